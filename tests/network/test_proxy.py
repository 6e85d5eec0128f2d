"""The host-side proxy on its own, on a listener on the host's loopback (in a sandbox it listens on the sandbox's):
what it lets through, what it refuses and why, and the bounds on what it reads."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
from collections.abc import AsyncIterator

import pytest

from langchain_kubernetes_agent_sandbox.network.policy import EgressPolicy
from langchain_kubernetes_agent_sandbox.network.proxy import EgressEvent, ProxyLimits
from langchain_kubernetes_agent_sandbox.network.service import EgressService
from langchain_kubernetes_agent_sandbox.network.settings import operator_policy

from .conftest import WebServer, resolve_test_names

Streams = tuple[asyncio.StreamReader, asyncio.StreamWriter]


@contextlib.asynccontextmanager
async def serving(
    policy: EgressPolicy, limits: ProxyLimits | None = None
) -> AsyncIterator[tuple[int, list[EgressEvent]]]:
    """The proxy's port, and the decisions it reports."""
    service = EgressService(resolver=resolve_test_names, limits=limits)
    events: list[EgressEvent] = []
    service.observers.append(events.append)
    listener = socket.create_server(("127.0.0.1", 0))
    listener.setblocking(False)
    await service.open("local-test", 0, lambda: listener, policy)
    try:
        yield listener.getsockname()[1], events
    finally:
        await asyncio.to_thread(service.stop)


async def exchange(port: int, request: bytes, *, more: bytes = b"") -> bytes:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(request)
    if more:
        status = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 10)
        writer.write(more)
        return status + await asyncio.wait_for(reader.read(), 10)
    try:
        return await asyncio.wait_for(reader.read(), 10)
    finally:
        writer.close()


def get(path: str, host: str) -> bytes:
    return f"GET {path} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n".encode()


async def test_connect_to_an_allowed_name_tunnels_to_it(web: WebServer, policy: EgressPolicy) -> None:
    (web.root / "a.txt").write_text("through the tunnel")
    async with serving(policy) as (port, events):
        target = f"files.test:{web.port}"
        answer = await exchange(
            port, f"CONNECT {target} HTTP/1.1\r\nHost: {target}\r\n\r\n".encode(), more=get("/a.txt", target)
        )
    assert answer.startswith(b"HTTP/1.1 200 Connection established\r\n\r\nHTTP/1.0 200 OK")
    assert answer.endswith(b"through the tunnel")
    assert events == [EgressEvent("local-test", "files.test", web.port, "allowed", "connected")]


async def test_a_plain_http_request_is_forwarded_in_origin_form(web: WebServer, policy: EgressPolicy) -> None:
    (web.root / "b.txt").write_text("forwarded")
    async with serving(policy) as (port, _):
        answer = await exchange(port, get(web.url("files.test", "b.txt"), f"files.test:{web.port}"))
    assert answer.startswith(b"HTTP/1.0 200 OK")
    assert answer.endswith(b"forwarded")


@pytest.mark.parametrize(
    ("target", "reason"),
    [
        ("files.test:22", "port not allowed"),
        ("elsewhere.test:{port}", "name not allowed"),
        ("loop.test:{port}", "private address"),
        ("metadata.test:{port}", "private address"),
        ("inner.test:{port}", "private address"),
        ("127.0.0.1:{port}", "name not allowed"),
        ("[::1]:{port}", "name not allowed"),
        ("nowhere.pkgs.test:443", "unresolvable"),
    ],
)
async def test_connect_refusals_name_their_reason(
    web: WebServer, policy: EgressPolicy, target: str, reason: str
) -> None:
    target = target.format(port=web.port)
    async with serving(policy) as (port, events):
        answer = await exchange(port, f"CONNECT {target} HTTP/1.1\r\n\r\n".encode())
    assert answer.startswith(b"HTTP/1.1 403 Egress refused: " + reason.encode())
    assert [(event.decision, event.reason) for event in events] == [("refused", reason)]


PRIVATE_LITERALS = ["127.0.0.1", "[::1]", "[::ffff:127.0.0.1]", "169.254.169.254", "[fe80::1]", "0.0.0.0", "10.0.0.1"]


@pytest.mark.parametrize("literal", PRIVATE_LITERALS)
async def test_address_literals_of_private_ranges_are_refused_even_where_every_name_is_allowed(
    web: WebServer, literal: str
) -> None:
    policy = operator_policy(["*"], ports=[web.port])
    assert policy is not None
    async with serving(policy) as (port, events):
        answer = await exchange(port, f"CONNECT {literal}:{web.port} HTTP/1.1\r\n\r\n".encode())
        forwarded = await exchange(port, get(f"http://{literal}:{web.port}/", f"{literal}:{web.port}"))
    assert answer.startswith(b"HTTP/1.1 403 Egress refused: private address"), answer
    assert forwarded.startswith(b"HTTP/1.1 403 Egress refused: private address"), forwarded
    assert {event.decision for event in events} == {"refused"}


@pytest.mark.parametrize("kind", ["connect", "plain"])
async def test_a_host_header_that_names_another_host_than_the_target_is_refused(
    web: WebServer, policy: EgressPolicy, kind: str
) -> None:
    target = f"files.test:{web.port}"
    request = (
        f"CONNECT {target} HTTP/1.1\r\nHost: loop.test:{web.port}\r\n\r\n".encode()
        if kind == "connect"
        else get(f"http://{target}/", f"metadata.test:{web.port}")
    )
    async with serving(policy) as (port, events):
        answer = await exchange(port, request)
    assert answer.startswith(b"HTTP/1.1 403 The Host header names another host")
    assert [event.reason for event in events] == ["host header differs from target"]


@pytest.mark.parametrize(
    "request_head",
    [
        b"GET https://files.test/ HTTP/1.1\r\n\r\n",
        b"GET /relative HTTP/1.1\r\nHost: files.test\r\n\r\n",
        b"GET http://files.test/ HTTP/1.1\r\nHost: files.test\r\nHost: loop.test\r\n\r\n",
        b"NOT A REQUEST\r\n\r\n",
    ],
)
async def test_requests_the_proxy_does_not_forward_get_a_400(policy: EgressPolicy, request_head: bytes) -> None:
    async with serving(policy) as (port, events):
        answer = await exchange(port, request_head)
    assert answer.startswith(b"HTTP/1.1 400 ")
    assert events == []


async def test_a_request_head_larger_than_the_bound_is_refused(policy: EgressPolicy) -> None:
    async with serving(policy, ProxyLimits(max_head_bytes=4096)) as (port, _):
        answer = await exchange(port, b"GET http://files.test/ HTTP/1.1\r\nX: " + b"a" * 100_000 + b"\r\n\r\n")
    assert answer.startswith(b"HTTP/1.1 431 ")


async def test_a_client_that_never_finishes_its_request_head_is_cut_off(policy: EgressPolicy) -> None:
    async with serving(policy, ProxyLimits(head_timeout=0.5)) as (port, _):
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(b"GET http://files.test/ HTTP/1.1\r\n")
        assert await asyncio.wait_for(reader.read(), 5) == b""
        writer.close()


async def test_connections_beyond_the_bound_are_refused(policy: EgressPolicy) -> None:
    async with serving(policy, ProxyLimits(max_connections=2)) as (port, events):
        held = [await asyncio.open_connection("127.0.0.1", port) for _ in range(2)]
        for _, writer in held:
            writer.write(b"G")  # started, never finished: each holds its slot
        await asyncio.sleep(0.2)
        answer = await exchange(port, b"GET http://files.test/ HTTP/1.1\r\n\r\n")
        for _, writer in held:
            writer.close()
    assert answer.startswith(b"HTTP/1.1 503 ")
    assert [event.reason for event in events] == ["too many connections"]


async def test_an_idle_tunnel_is_closed(web: WebServer, policy: EgressPolicy) -> None:
    async with serving(policy, ProxyLimits(idle_timeout=0.5)) as (port, _):
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(f"CONNECT files.test:{web.port} HTTP/1.1\r\n\r\n".encode())
        assert (await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 5)).startswith(b"HTTP/1.1 200")
        assert await asyncio.wait_for(reader.read(), 5) == b""
        writer.close()


def socks_connect(host: str, port: int) -> bytes:
    name = host.encode()
    return b"\x05\x01\x00" + b"\x05\x01\x00\x03" + bytes([len(name)]) + name + port.to_bytes(2, "big")


async def test_socks5_connects_allowed_names_and_refuses_others(web: WebServer, policy: EgressPolicy) -> None:
    (web.root / "c.txt").write_text("by socks")
    async with serving(policy) as (port, events):
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(socks_connect("pkgs.test", web.port))
        assert await asyncio.wait_for(reader.readexactly(2 + 10), 5) == b"\x05\x00" + b"\x05\x00\x00\x01" + bytes(6)
        writer.write(get("/c.txt", f"pkgs.test:{web.port}"))
        assert (await asyncio.wait_for(reader.read(), 5)).endswith(b"by socks")
        writer.close()
        refused = await exchange(port, socks_connect("metadata.test", web.port))
        udp = await exchange(port, b"\x05\x01\x00\x05\x03\x00\x01" + bytes(6))
    assert refused == b"\x05\x00" + b"\x05\x02\x00\x01" + bytes(6)
    assert udp == b"\x05\x00" + b"\x05\x07\x00\x01" + bytes(6)
    decisions = [(event.host, event.decision) for event in events]
    assert decisions == [("pkgs.test", "allowed"), ("metadata.test", "refused")]


async def test_every_decision_is_in_the_audit_log_without_contents(
    web: WebServer, policy: EgressPolicy, caplog: pytest.LogCaptureFixture
) -> None:
    (web.root / "secret.txt").write_text("contents-of-the-response")
    caplog.set_level(logging.INFO, logger="langchain_kubernetes_agent_sandbox.audit")
    async with serving(policy) as (port, _):
        await exchange(port, get(web.url("files.test", "secret.txt?token=query-secret"), f"files.test:{web.port}"))
        await exchange(port, b"CONNECT files.test:22 HTTP/1.1\r\n\r\n")
    audits = [record.audit for record in caplog.records if hasattr(record, "audit")]  # type: ignore[attr-defined]
    assert audits == [
        {"event": "egress", "sandbox": "local-test", "host": "files.test", "port": web.port, "decision": "allowed",
         "reason": "connected"},
        {"event": "egress", "sandbox": "local-test", "host": "files.test", "port": 22, "decision": "refused",
         "reason": "port not allowed"},
    ]  # fmt: skip
    assert "secret" not in caplog.text


async def read_or_reset(reader: asyncio.StreamReader) -> bytes:
    try:
        return await asyncio.wait_for(reader.read(), 5)
    except ConnectionResetError:
        return b""


async def test_a_flood_of_connections_holds_at_most_twice_the_bound(policy: EgressPolicy) -> None:
    async with serving(policy, ProxyLimits(max_connections=2)) as (port, events):
        held = [await asyncio.open_connection("127.0.0.1", port) for _ in range(8)]
        for _, writer in held:
            writer.write(b"G")
        answers = [await read_or_reset(reader) for reader, _ in held[2:]]
        for _, writer in held:
            writer.close()
    assert sum(answer.startswith(b"HTTP/1.1 503 ") for answer in answers) == 2  # connections 3 and 4
    assert answers.count(b"") == 4  # the rest were closed (or reset) without a word
    assert [event.reason for event in events] == ["too many connections"] * 6


async def test_the_servers_connections_are_bounded_across_all_its_sandboxes(policy: EgressPolicy) -> None:
    service = EgressService(resolver=resolve_test_names, limits=ProxyLimits(max_total_connections=2))
    events: list[EgressEvent] = []
    service.observers.append(events.append)
    listeners = [socket.create_server(("127.0.0.1", 0)) for _ in range(2)]
    for number, listener in enumerate(listeners):
        listener.setblocking(False)
        await service.open(f"local-{number}", 0, lambda listener=listener: listener, policy)
    try:
        first, second = (listener.getsockname()[1] for listener in listeners)
        held = [await asyncio.open_connection("127.0.0.1", first) for _ in range(2)]
        for _, writer in held:
            writer.write(b"G")
        await asyncio.sleep(0.2)
        answer = await read_or_reset((await asyncio.open_connection("127.0.0.1", second))[0])
        for _, writer in held:
            writer.close()
    finally:
        await asyncio.to_thread(service.stop)
    assert answer == b""
    assert [(event.sandbox, event.reason) for event in events] == [("local-1", "too many connections")]
