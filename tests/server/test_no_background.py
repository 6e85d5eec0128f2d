"""Where a sandbox keeps no background processes (runtimes that end every process a request started when it
returns), execute_python falls back to one process per call and session_info says so, and commands run to their
end instead of detaching. Through a real MCP client, on the local provider and on the imitation cluster."""

from __future__ import annotations

import contextlib
import secrets
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from mcp import ClientSession
from mcp.shared.memory import create_connected_server_and_client_session

from langchain_kubernetes_agent_sandbox.providers.local import LocalProvider
from langchain_kubernetes_agent_sandbox.server.config import ServerConfig
from langchain_kubernetes_agent_sandbox.server.runtime import running
from langchain_kubernetes_agent_sandbox.testing import FakeCluster
from tests.server.mcp_calls import call, data, fail, text_of
from tests.server.providers import Open, on_cluster


@pytest.fixture(params=["local", "kubernetes"])
def client_without_background(request: pytest.FixtureRequest, local_state_dir: Path) -> Open:
    @contextlib.asynccontextmanager
    async def open_client(**settings: Any) -> AsyncIterator[ClientSession]:
        if request.param == "local":
            config = ServerConfig(state_dir=local_state_dir, principal="alice", **settings)
            provider = LocalProvider(local_state_dir, keep_background=False)
        else:
            cluster: FakeCluster = request.getfixturevalue("fake_cluster_without_background")
            config = on_cluster(cluster, principal=f"alice-{secrets.token_hex(4)}", **settings)
            provider = None
        async with running(config, provider) as server, create_connected_server_and_client_session(server) as client:
            try:
                yield client
            finally:
                await call(client, "close_session", session_id=data(await call(client, "session_info"))["session_id"])

    return open_client


async def test_python_runs_one_process_per_call_and_session_info_says_so(client_without_background: Open) -> None:
    async with client_without_background() as client:
        first = data(await call(client, "execute_python", code="x = 41\nx + 1"))
        assert (first["value"], first["kernel"], first["exit_code"]) == ("42", "once", 0)
        second = data(await call(client, "execute_python", code="x"))
        assert second["exit_code"] == 1
        assert "NameError" in second["stderr"]
        info = await call(client, "session_info")
        assert data(info)["background_processes"] is False
        assert "one python3 process per call" in text_of(info)


async def test_long_commands_run_to_their_end_and_background_is_refused(client_without_background: Open) -> None:
    async with client_without_background(detach_after=1) as client:
        command = data(await call(client, "execute", command="sleep 2; echo done"))
        assert (command["state"] == "running", command["stdout"], command["exit_code"]) == (False, "done\n", 0)
        cell = data(await call(client, "execute_python", code="import time\ntime.sleep(2)\nprint('slept')"))
        assert (cell["state"] == "running", cell["stdout"]) == (False, "slept\n")
        message = await fail(client, "execute", command="sleep 1", background=True)
        assert message.startswith("invalid_argument:")
        assert "without it" in message


async def test_where_background_processes_last_session_info_says_so(provider_client: Open) -> None:
    async with provider_client() as client:
        await call(client, "execute_python", code="y = 1")
        info = await call(client, "session_info")
        assert data(info)["background_processes"] is True
        assert "running (variables from earlier calls are there)" in text_of(info)


async def test_a_fork_copies_locally_and_a_one_shot_runtime_refuses_it_leaving_nothing(
    client_without_background: Open, request: pytest.FixtureRequest
) -> None:
    """Locally the server copies the files itself; a runtime with no agent has nothing to stream them through."""
    async with client_without_background() as client:
        await call(client, "upload_file", path="/app/kept.txt", content="kept")
        before = data(await call(client, "list_sessions"))["sessions"]
        if request.node.callspec.params["client_without_background"] == "local":
            fork = data(await call(client, "fork_session"))["session_id"]
            copied = data(await call(client, "download_file", path="/app/kept.txt", session_id=fork))
            assert copied["content"] == "kept"
            await call(client, "close_session", session_id=fork)
        else:
            refused = await fail(client, "fork_session")
            assert refused.startswith("invalid_argument:")
            assert "one-shot commands only" in refused
            assert data(await call(client, "list_sessions"))["sessions"] == before
