"""Fixtures for the MCP server: the real local provider under a real server, reached by real MCP clients."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pytest
from mcp import ClientSession
from mcp.shared.memory import create_connected_server_and_client_session

from langchain_kubernetes_agent_sandbox.providers.local import LocalProvider
from langchain_kubernetes_agent_sandbox.server.app import SandboxMCP
from langchain_kubernetes_agent_sandbox.server.config import ServerConfig
from langchain_kubernetes_agent_sandbox.server.runtime import build_server, make_provider, session_policy
from langchain_kubernetes_agent_sandbox.sessions import SessionRegistry
from tests.server.mcp_calls import Connect


@pytest.fixture
def make_config(local_state_dir: Path) -> Callable[..., ServerConfig]:
    def make(**settings: Any) -> ServerConfig:
        return ServerConfig.model_validate({"state_dir": local_state_dir, "principal": "alice", **settings})

    return make


@pytest.fixture
async def connect(make_config: Callable[..., ServerConfig]) -> AsyncIterator[Connect]:
    """Opens in-memory MCP client sessions to servers over one shared local provider state folder.

    Servers made with the same settings share one registry (like one process); `fresh=True` gives a new
    provider and registry on the same state folder (like a restart, or another replica).
    """
    registries: dict[str, SessionRegistry] = {}
    providers: list[LocalProvider] = []

    @contextlib.asynccontextmanager
    async def open_client(
        *, principal: str = "alice", fresh: bool = False, **settings: Any
    ) -> AsyncIterator[ClientSession]:
        config = make_config(principal=principal, **settings)
        key = repr(sorted(settings.items()))
        if fresh or key not in registries:
            provider = make_provider(config)
            assert isinstance(provider, LocalProvider)
            providers.append(provider)
            registries[key] = SessionRegistry(provider, session_policy(config))
        server: SandboxMCP = build_server(config, registries[key])
        reaper = asyncio.create_task(registries[key].reap_forever())  # as `running` has it: idle sessions suspend
        try:
            async with create_connected_server_and_client_session(server) as client:
                yield client
        finally:
            reaper.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await reaper

    yield open_client
    for provider in providers:
        for sandbox in await provider.list():
            await sandbox.terminate()


from tests.server.providers import provider_client  # noqa: E402, F401 - runs a test on both providers
