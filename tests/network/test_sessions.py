"""Egress as a session sees it through the MCP tools: create_session(network=...) narrows the operator's
allow-list and never widens it, session_info says what is reachable, and /metrics counts every decision."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from mcp import ClientSession
from mcp.shared.memory import create_connected_server_and_client_session
from prometheus_client import generate_latest

from langchain_kubernetes_agent_sandbox.providers.local import LocalProvider
from langchain_kubernetes_agent_sandbox.server.config import ServerConfig
from langchain_kubernetes_agent_sandbox.server.metrics import MeasuredProvider
from langchain_kubernetes_agent_sandbox.server.runtime import build_server, session_policy
from langchain_kubernetes_agent_sandbox.sessions import SessionRegistry
from tests.server.mcp_calls import call, data, fail

from .conftest import SERVED, TRAPS, WebServer, resolve_test_names


@contextlib.asynccontextmanager
async def server(state: Path, web: WebServer) -> AsyncIterator[tuple[ClientSession, SessionRegistry]]:
    served = [f"{name}:{web.port}" for name in SERVED]
    config = ServerConfig(
        state_dir=state,
        principal="alice",
        allow_network=True,
        egress_allow=(*served, *(f"{name}:{web.port}" for name in TRAPS)),
        egress_private=tuple(served),
    )
    provider = LocalProvider(state, egress=config.egress, egress_resolver=resolve_test_names)
    registry = SessionRegistry(provider, session_policy(config))
    try:
        async with create_connected_server_and_client_session(build_server(config, registry)) as client:
            yield client, registry
    finally:
        for sandbox in await provider.list():
            await sandbox.terminate()
        await provider.aclose()


async def test_a_session_asks_for_less_gets_it_and_sees_what_it_may_reach(
    local_state_dir: Path, web: WebServer
) -> None:
    (web.root / "hello.txt").write_text("hello")
    async with server(local_state_dir, web) as (client, _):
        created = data(await call(client, "create_session", network=[f"files.test:{web.port}"]))
        session = created["session_id"]
        info = data(await call(client, "session_info", session_id=session))
        curl = "curl -s -w ' %{http_code}' "
        allowed = data(
            await call(client, "execute", session_id=session, command=curl + web.url("files.test", "hello.txt"))
        )
        narrowed = data(await call(client, "execute", session_id=session, command=curl + web.url("pkgs.test")))
    assert created["reachable"] == info["reachable"] == [f"files.test:{web.port}"]
    assert allowed["stdout"] == "hello 200"
    assert narrowed["stdout"].endswith(" 403")


async def test_network_true_gives_the_operators_allow_list(local_state_dir: Path, web: WebServer) -> None:
    async with server(local_state_dir, web) as (client, _):
        created = data(await call(client, "create_session", network=True))
    assert f"pkgs.test:{web.port}" in created["reachable"]
    assert f"metadata.test:{web.port}" in created["reachable"]


async def test_a_session_cannot_ask_for_more_than_the_operator_allows(local_state_dir: Path, web: WebServer) -> None:
    async with server(local_state_dir, web) as (client, _):
        wider = await fail(client, "create_session", network=["*.test"])
        other_port = await fail(client, "create_session", network=["files.test:22"])
        malformed = await fail(client, "create_session", network=["http://files.test/"])
    assert wider.startswith("invalid_argument:")
    assert "asks for more than this server allows" in wider
    assert "files.test:22" in other_port
    assert "is not a name pattern" in malformed


async def test_every_decision_is_counted_in_the_metrics(local_state_dir: Path, web: WebServer) -> None:
    async with server(local_state_dir, web) as (client, registry):
        session = data(await call(client, "create_session", network=True))["session_id"]
        urls = " ".join([web.url("files.test"), web.url("loop.test"), "http://files.test:22/"])
        await call(client, "execute", session_id=session, command=f"for u in {urls}; do curl -s -o /dev/null $u; done")
        assert isinstance(registry.provider, MeasuredProvider)
        text = generate_latest(registry.provider.metrics.registry).decode()
    prefix = "kubernetes_agent_sandbox_egress_connections_total"
    assert f'{prefix}{{decision="allowed",reason="connected"}} 1.0' in text
    assert f'{prefix}{{decision="refused",reason="private address"}} 1.0' in text
    assert f'{prefix}{{decision="refused",reason="port not allowed"}} 1.0' in text


def test_network_without_an_allow_list_is_a_configuration_error() -> None:
    with pytest.raises(ValueError, match="allow_network needs an allow-list: give egress_allow"):
        ServerConfig(allow_network=True)
