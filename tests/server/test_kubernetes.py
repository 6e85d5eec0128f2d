"""The same server on the Kubernetes provider, on the imitation cluster and on the real control plane: sessions live
on SandboxClaims."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator

import pytest
from mcp import ClientSession
from mcp.shared.memory import create_connected_server_and_client_session

from langchain_kubernetes_agent_sandbox.server.runtime import running
from tests.server.mcp_calls import call, fail
from tests.server.providers import CLUSTER_FIXTURES, Cluster, on_cluster


@pytest.fixture(params=sorted(CLUSTER_FIXTURES))
def cluster(request: pytest.FixtureRequest) -> Cluster:
    found: Cluster = request.getfixturevalue(CLUSTER_FIXTURES[request.param])
    return found


@contextlib.asynccontextmanager
async def kubernetes_client(cluster: Cluster, principal: str) -> AsyncIterator[ClientSession]:
    """A server process's worth of state (provider, registry) on the cluster, reached in memory."""
    config = on_cluster(cluster, principal=principal)
    async with running(config) as server, create_connected_server_and_client_session(server) as client:
        yield client


async def test_sessions_on_the_cluster_survive_a_server_restart_and_stay_private(cluster: Cluster) -> None:
    async with kubernetes_client(cluster, "alice") as client:
        created = await call(client, "create_session", labels={"team": "data"})
        session_id = created.structuredContent["session_id"]  # type: ignore[index]
        assert created.structuredContent["provider"] == "kubernetes"  # type: ignore[index]
        await call(client, "upload_file", path="in.csv", content="v\n2\n3\n", session_id=session_id)
        code = "print(sum(int(x) for x in open('/app/in.csv').read().split()[1:]))"
        result = await call(client, "execute_python", code=code, session_id=session_id)
        assert result.structuredContent["stdout"] == "5\n"  # type: ignore[index]
    async with kubernetes_client(cluster, "bob") as bob:
        assert (await fail(bob, "execute", command="ls", session_id=session_id)).startswith("not_found:")
    async with kubernetes_client(cluster, "alice") as client:
        listed = (await call(client, "list_sessions")).structuredContent["sessions"]  # type: ignore[index]
        assert [(entry["session_id"], entry["labels"]) for entry in listed] == [(session_id, {"team": "data"})]
        downloaded = await call(client, "download_file", path="/app/in.csv", session_id=session_id)
        assert downloaded.structuredContent["content"] == "v\n2\n3\n"  # type: ignore[index]
        await call(client, "close_session", session_id=session_id)
        assert (await call(client, "list_sessions")).structuredContent == {"sessions": []}


async def test_timeouts_on_the_cluster_kill_and_keep_output(cluster: Cluster) -> None:
    async with kubernetes_client(cluster, "carol") as client:
        result = await call(client, "execute", command="echo started; sleep 30", timeout=2)
        assert result.structuredContent["state"] == "timed_out"  # type: ignore[index]
        assert result.structuredContent["exit_code"] == 124  # type: ignore[index]
        assert result.structuredContent["stdout"] == "started\n"  # type: ignore[index]
        session_id = result.structuredContent["session_id"]  # type: ignore[index]
        await call(client, "close_session", session_id=session_id)
