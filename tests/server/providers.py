"""A fixture that runs a test once on the local provider and once on the imitation cluster, through MCP."""

from __future__ import annotations

import asyncio
import contextlib
import secrets
from collections.abc import AsyncIterator, Callable, Iterator
from typing import Any

import pytest
from mcp import ClientSession
from mcp.shared.memory import create_connected_server_and_client_session

from langchain_kubernetes_agent_sandbox.server.config import ServerConfig
from langchain_kubernetes_agent_sandbox.server.runtime import running
from langchain_kubernetes_agent_sandbox.testing import FakeCluster
from tests.server.mcp_calls import Connect

Open = Callable[..., contextlib.AbstractAsyncContextManager[ClientSession]]


def on_cluster(cluster: FakeCluster, **settings: Any) -> ServerConfig:
    """The server's settings for the Kubernetes provider on the imitation cluster `cluster`."""
    return ServerConfig(
        provider="kubernetes",
        warm_pool=cluster.pool,
        api_url=cluster.router_url,
        kubeconfig=cluster.kubeconfig,
        **settings,
    )


@pytest.fixture(params=["local", "kubernetes"])
def provider_client(request: pytest.FixtureRequest) -> Iterator[Open]:
    """Opens a client; every open after the first is a new server process's worth of state (a restart). On the
    cluster, which the whole run shares, the sessions the test left are closed at its end."""
    if request.param == "local":
        connect: Connect = request.getfixturevalue("connect")

        @contextlib.asynccontextmanager
        async def local(principal: str = "alice", **settings: Any) -> AsyncIterator[ClientSession]:
            async with connect(principal=principal, fresh=True, **settings) as client:
                yield client

        yield local
        return
    cluster = request.getfixturevalue("fake_cluster")
    suffix = secrets.token_hex(4)  # the cluster is shared by the whole run: keep these sessions apart from others'
    principals: set[str] = set()

    @contextlib.asynccontextmanager
    async def served(principal: str, **settings: Any) -> AsyncIterator[ClientSession]:
        config = on_cluster(cluster, principal=principal, **settings)
        async with running(config) as server, create_connected_server_and_client_session(server) as client:
            yield client

    @contextlib.asynccontextmanager
    async def kubernetes(principal: str = "alice", **settings: Any) -> AsyncIterator[ClientSession]:
        principals.add(f"{principal}-{suffix}")
        async with served(f"{principal}-{suffix}", **settings) as client:
            yield client

    async def close_sessions() -> None:
        for principal in principals:
            async with served(principal) as client:
                listed = (await client.call_tool("list_sessions", {})).structuredContent or {}
                for session in listed.get("sessions", []):
                    await client.call_tool("close_session", {"session_id": session["session_id"]})

    yield kubernetes
    asyncio.run(close_sessions())  # after the test's own event loop ended
