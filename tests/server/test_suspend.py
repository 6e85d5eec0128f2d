"""Suspend and resume through a real MCP client, on the local provider and the imitation cluster: an idle session is
suspended rather than ended, the next call resumes it with its files and without its processes, and says so."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Iterator
from typing import Any

import pytest
from mcp import ClientSession

from langchain_kubernetes_agent_sandbox.errors import TOOL_ERROR_META
from langchain_kubernetes_agent_sandbox.server.tools import RESUMED_META
from langchain_kubernetes_agent_sandbox.testing import FakeCluster
from langchain_kubernetes_agent_sandbox.testing.control_plane import ControlPlane
from tests.control_plane import NAMESPACE, RealPool
from tests.server.mcp_calls import call, data, fail, text_of
from tests.server.providers import Cluster, Open

ROWS = pytest.mark.parametrize("provider_client", ["local", "kubernetes", "kubernetes-real"], indirect=True)
"""The imitation keeps /app on a volume in every pool; on the real control plane the sessions are claimed from a pool
whose template does (`real_pool` below), as the agent-sandbox controller needs for its operatingMode."""
CLUSTERS = {"kubernetes": "fake_cluster", "kubernetes-real": "real_pool"}


@pytest.fixture
def real_pool(real_kept_pool: RealPool) -> RealPool:
    """The real control plane's rows claim from its pool that keeps /app on a PVC."""
    return real_kept_pool


@pytest.fixture
def suspending(request: pytest.FixtureRequest) -> dict[str, Any]:
    """Settings under which the row's sessions suspend when idle: a cluster's pool is declared in suspend_pools."""
    row = request.node.callspec.params["provider_client"]
    if row == "local":
        return {}
    cluster: Cluster = request.getfixturevalue(CLUSTERS[row])
    return {"suspend_pools": (cluster.pool,)}


async def state_of(client: ClientSession, session_id: str) -> str:
    return str(data(await call(client, "session_info", session_id=session_id))["state"])


async def wait_until_suspended(client: ClientSession, session_id: str, within: float = 20.0) -> None:
    async with asyncio.timeout(within):
        while await state_of(client, session_id) != "suspended":  # noqa: ASYNC110 - the server's state, polled
            await asyncio.sleep(0.2)


@ROWS
async def test_an_idle_session_is_suspended_and_the_next_call_resumes_it_with_its_files(
    provider_client: Open, suspending: dict[str, Any]
) -> None:
    async with provider_client(idle_timeout=2, reap_interval=0.3, **suspending) as client:
        session_id = data(await call(client, "create_session"))["session_id"]
        await call(client, "execute", session_id=session_id, command="printf kept > notes.txt")
        await call(client, "execute", session_id=session_id, command="sleep 301 &", timeout=5)
        await wait_until_suspended(client, session_id)
        listed = data(await call(client, "list_sessions"))["sessions"]
        assert [s["state"] for s in listed if s["session_id"] == session_id] == ["suspended"]
        resumed = await call(
            client, "execute", session_id=session_id, command="cat notes.txt; pgrep -f '^sleep 301$' || echo ' gone'"
        )
        assert data(resumed)["stdout"] == "kept gone\n"
        assert resumed.meta == {RESUMED_META: session_id}
        assert "was suspended and has been resumed" in text_of(resumed)
        assert await state_of(client, session_id) == "running"
        again = await call(client, "execute", session_id=session_id, command="true")
        assert again.meta is None  # only the call that resumed it says so


@ROWS
async def test_suspend_session_stops_the_kernel_and_keeps_the_files(
    provider_client: Open, suspending: dict[str, Any]
) -> None:
    async with provider_client(**suspending) as client:
        session_id = data(await call(client, "create_session"))["session_id"]
        await call(client, "execute_python", session_id=session_id, code="x = 41\nopen('/app/f.txt', 'w').write('y')")
        suspended = await call(client, "suspend_session", session_id=session_id)
        assert "Python kernel's variables are lost" in text_of(suspended)
        assert await state_of(client, session_id) == "suspended"
        result = await call(client, "execute_python", session_id=session_id, code="print(open('/app/f.txt').read())")
        assert data(result)["stdout"] == "y\n"
        assert result.meta == {RESUMED_META: session_id}
        lost = await client.call_tool("execute_python", {"session_id": session_id, "code": "x + 1"})
        assert "NameError" in text_of(lost)


@ROWS
async def test_the_maximum_lifetime_ends_a_suspended_session(provider_client: Open, suspending: dict[str, Any]) -> None:
    async with provider_client(max_lifetime=4, idle_timeout=1, reap_interval=0.3, **suspending) as client:
        session_id = data(await call(client, "create_session"))["session_id"]
        await call(client, "suspend_session", session_id=session_id)
        await asyncio.sleep(5)
        assert "No session" in await fail(client, "execute", session_id=session_id, command="true")


@contextlib.contextmanager
def no_room(request: pytest.FixtureRequest) -> Iterator[str]:
    """A cluster where no new pod can start, and what the controller then says: the imitation's exhausted pool, or a
    ResourceQuota admitting no pod in the real control plane's namespace."""
    if request.node.callspec.params["provider_client"] == "kubernetes":
        cluster: FakeCluster = request.getfixturevalue("fake_cluster")
        cluster.set_faults(pool_exhausted=True)
        try:
            yield "Insufficient cpu"
        finally:
            cluster.clear_faults()
        return
    plane: ControlPlane = request.getfixturevalue("real_pool").plane
    quota = {
        "apiVersion": "v1",
        "kind": "ResourceQuota",
        "metadata": {"name": "no-pods", "namespace": NAMESPACE},
        "spec": {"hard": {"pods": "0"}},
    }
    plane.apply(quota)
    path = f"/api/v1/namespaces/{NAMESPACE}/resourcequotas/no-pods"
    deadline = time.monotonic() + 30
    while "used" not in plane.http.get(path).json().get("status", {}):  # counted by the quota controller
        assert time.monotonic() < deadline, "the quota controller never counted the quota"
        time.sleep(0.2)
    try:
        yield "exceeded quota: no-pods"
    finally:
        plane.http.delete(path).raise_for_status()


@pytest.mark.parametrize("provider_client", ["kubernetes", "kubernetes-real"], indirect=True)
async def test_a_resume_without_capacity_is_a_typed_error_and_the_session_stays_suspended(
    provider_client: Open, suspending: dict[str, Any], request: pytest.FixtureRequest
) -> None:
    async with provider_client(resume_timeout=3, **suspending) as client:
        session_id = data(await call(client, "create_session"))["session_id"]
        await call(client, "execute", session_id=session_id, command="printf still > kept.txt")
        await call(client, "suspend_session", session_id=session_id)
        with no_room(request) as said:
            refused = await client.call_tool("execute", {"session_id": session_id, "command": "true"})
            assert refused.isError
            assert refused.meta is not None
            assert refused.meta[TOOL_ERROR_META]["code"] == "no_capacity"
            assert "stays suspended" in text_of(refused)
            assert said in text_of(refused)  # what the controller said
            assert await state_of(client, session_id) == "suspended"
    async with provider_client(**suspending) as client:  # room again; the default wait covers a controller's backoff
        kept = await call(client, "execute", session_id=session_id, command="cat kept.txt")
        assert data(kept)["stdout"] == "still"
        assert kept.meta == {RESUMED_META: session_id}


@pytest.mark.parametrize("provider_client", ["kubernetes"], indirect=True)
async def test_a_pool_not_declared_to_keep_files_ends_idle_sessions(provider_client: Open) -> None:
    async with provider_client(idle_timeout=3, reap_interval=0.3) as client:
        session_id = data(await call(client, "create_session"))["session_id"]
        assert data(await call(client, "list_sessions"))["sessions"][0]["suspends_when_idle"] is False
        assert "cannot be suspended" in await fail(client, "suspend_session", session_id=session_id)
        await asyncio.sleep(4)
        ended = await fail(client, "execute", session_id=session_id, command="true")
        assert "No session" in ended or "its files are lost" in ended


@pytest.mark.parametrize("provider_client", ["kubernetes"], indirect=True)
async def test_a_session_another_replica_suspended_is_resumed_not_lost(
    provider_client: Open, suspending: dict[str, Any]
) -> None:
    async with provider_client(**suspending) as one, provider_client(**suspending) as other:
        session_id = data(await call(one, "create_session"))["session_id"]
        await call(one, "execute", session_id=session_id, command="printf kept > kept.txt")
        await call(other, "suspend_session", session_id=session_id)
        first = await one.call_tool("execute", {"session_id": session_id, "command": "cat kept.txt"})
        if first.isError:  # the call met the pod going: it says so, and loses nothing
            assert "suspended by another server replica" in text_of(first) or "try again" in text_of(first)
            first = await call(one, "execute", session_id=session_id, command="cat kept.txt")
        assert data(first)["stdout"] == "kept"
        assert first.meta == {RESUMED_META: session_id}
