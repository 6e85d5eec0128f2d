"""The host-side egress proxy of one sandbox: HTTP CONNECT, plain HTTP and SOCKS5 on one unix socket.

Every connection the sandbox asks for is decided by its `EgressPolicy` before anything is sent: the name and
port against the rules, then every address the name resolves to against the private ranges. The proxy connects
to the address it checked, never resolving twice, so a name cannot change its answer between check and connect.
Everything it reads from the sandbox is bounded: the request head's size and the time to send it, the number of
connections at once, and how long a connection may stay silent. It logs and counts where connections went, never
what they carried.
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import logging
import socket
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass

from .policy import EgressPolicy, IpAddress, is_public, literal, normal_host

audit_logger = logging.getLogger("langchain_kubernetes_agent_sandbox.audit")

Resolver = Callable[[str, int], Awaitable[list[IpAddress]]]
Observer = Callable[["EgressEvent"], None]

CHUNK = 256 * 1024
SOCKS_VERSION = 5
_SOCKS_REFUSED = {"name not allowed": 2, "port not allowed": 2, "private address": 2, "unresolvable": 4}
_HOP_BY_HOP = frozenset({"connection", "keep-alive", "proxy-connection", "proxy-authorization", "te", "upgrade"})


@dataclass(frozen=True)
class ProxyLimits:
    """Bounds on what one sandbox's proxy reads and holds."""

    max_head_bytes: int = 16 * 1024
    """A request head (request line and headers) larger than this is refused."""
    head_timeout: float = 10.0
    max_connections: int = 64
    """Connections one sandbox may hold open at once."""
    connect_timeout: float = 10.0
    idle_timeout: float = 300.0
    """A connection on which neither side sent anything for this long is closed."""


@dataclass(frozen=True)
class EgressEvent:
    """One connection the proxy decided: where it was to go and what became of it (never its contents)."""

    sandbox: str
    host: str
    port: int
    decision: str
    """`allowed` or `refused`."""
    reason: str


class Refused(Exception):
    """A connection the policy (or the target) does not allow; the message is the reason counted."""


async def system_resolver(host: str, port: int) -> list[IpAddress]:
    infos = await asyncio.get_running_loop().getaddrinfo(host, port, type=socket.SOCK_STREAM)
    return [ipaddress.ip_address(info[4][0]) for info in infos]


def audit(event: EgressEvent) -> None:
    audit_logger.info(
        "egress from %s to %s:%d %s (%s)",
        event.sandbox,
        event.host,
        event.port,
        event.decision,
        event.reason,
        extra={"audit": {"event": "egress", **event.__dict__}},
    )


class EgressProxy:
    """Serves one sandbox; `handle` takes one connection from its socket."""

    def __init__(
        self,
        sandbox: str,
        policy: EgressPolicy,
        *,
        resolver: Resolver = system_resolver,
        limits: ProxyLimits | None = None,
        observers: Sequence[Observer] = (),
    ) -> None:
        self.sandbox = sandbox
        self.policy = policy
        self.limits = limits or ProxyLimits()
        self._resolve = resolver
        self._observers = observers
        """Read at each decision, so an observer added later sees the connections from then on."""
        self._open = 0
        self._writers: set[asyncio.StreamWriter] = set()

    def abort(self) -> None:
        """End every connection at once, the sandbox's and the ones to its targets."""
        for writer in list(self._writers):
            writer.transport.abort()

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self._writers.add(writer)
        try:
            if self._open >= self.limits.max_connections:
                self._note("?", 0, "refused", "too many connections")
                await _answer(writer, 503, "Too many connections", reader)
                return
            self._open += 1
            try:
                async with asyncio.timeout(self.limits.head_timeout):
                    first = await reader.readexactly(1)
                if first[0] == SOCKS_VERSION:
                    await self._socks(reader, writer)
                else:
                    await self._http(first, reader, writer)
            finally:
                self._open -= 1
        except (OSError, asyncio.IncompleteReadError, asyncio.LimitOverrunError, TimeoutError, ValueError):
            pass
        finally:
            self._writers.discard(writer)
            writer.close()
            with contextlib.suppress(OSError):
                await writer.wait_closed()

    async def _http(self, first: bytes, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            async with asyncio.timeout(self.limits.head_timeout):
                head = first + await reader.readuntil(b"\r\n\r\n")
        except asyncio.LimitOverrunError:
            await _answer(writer, 431, "Request head too large")
            return
        request = _parse_head(head)
        if request is None:
            await _answer(writer, 400, "Malformed proxy request")
            return
        method, target, headers = request
        if method == "CONNECT":
            authority = _authority(target, None)
        elif target.lower().startswith("http://"):
            authority = _authority(target[7:].split("/", 1)[0].split("?", 1)[0], 80)
        else:
            # https:// in a plain request, an origin-form path, ftp://: nothing this proxy forwards
            await _answer(writer, 400, "Only CONNECT and absolute http:// requests are proxied")
            return
        if authority is None:
            await _answer(writer, 400, "Malformed target")
            return
        host, port = authority
        named = headers.get("host")
        if named is not None and _authority(named, port) != (host, port):
            self._note(host, port, "refused", "host header differs from target")
            await _answer(writer, 403, "The Host header names another host than the request's target")
            return
        try:
            upstream_reader, upstream = await self._connect(host, port)
        except Refused as refused:
            await _answer(writer, 502 if str(refused) == "unreachable" else 403, f"Egress refused: {refused}")
            return
        try:
            if method == "CONNECT":
                writer.write(b"HTTP/1.1 200 Connection established\r\n\r\n")
            else:
                upstream.write(_origin_request(method, target, head))
            await _splice(reader, writer, upstream_reader, upstream, self.limits.idle_timeout)
        finally:
            self._writers.discard(upstream)
            upstream.close()

    async def _socks(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        async with asyncio.timeout(self.limits.head_timeout):
            count = (await reader.readexactly(1))[0]
            methods = await reader.readexactly(count)
            if 0 not in methods:
                writer.write(b"\x05\xff")
                return
            writer.write(b"\x05\x00")
            version, command, _, kind = await reader.readexactly(4)
            if kind == 1:
                host = str(ipaddress.IPv4Address(await reader.readexactly(4)))
            elif kind == 4:
                host = str(ipaddress.IPv6Address(await reader.readexactly(16)))
            elif kind == 3:
                host = (await reader.readexactly((await reader.readexactly(1))[0])).decode("ascii", "replace")
            else:
                writer.write(_socks_reply(8))
                return
            port = int.from_bytes(await reader.readexactly(2), "big")
        if version != SOCKS_VERSION or command != 1:
            writer.write(_socks_reply(7))  # only CONNECT: no BIND, no UDP
            return
        try:
            upstream_reader, upstream = await self._connect(host, port)
        except Refused as refused:
            writer.write(_socks_reply(_SOCKS_REFUSED.get(str(refused), 5)))
            return
        try:
            writer.write(_socks_reply(0))
            await _splice(reader, writer, upstream_reader, upstream, self.limits.idle_timeout)
        finally:
            self._writers.discard(upstream)
            upstream.close()

    async def _connect(self, host: str, port: int) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
        """A connection to `host:port` if the policy allows it and every address of the name is one it may reach."""
        host = normal_host(host)
        reason = self.policy.refusal(host, port)
        if reason is None:
            reason, addresses = await self._addresses(host, port)
        if reason is not None:
            self._note(host, port, "refused", reason)
            raise Refused(reason)
        for address in addresses:
            try:
                async with asyncio.timeout(self.limits.connect_timeout):
                    opened = await asyncio.open_connection(str(address), port, limit=CHUNK)
            except (OSError, TimeoutError):
                continue
            self._note(host, port, "allowed", "connected")
            self._writers.add(opened[1])
            return opened
        self._note(host, port, "allowed", "unreachable")
        raise Refused("unreachable")

    async def _addresses(self, host: str, port: int) -> tuple[str | None, list[IpAddress]]:
        spelled = literal(host)
        if spelled is not None:
            addresses = [spelled]
        else:
            try:
                async with asyncio.timeout(self.limits.connect_timeout):
                    addresses = await self._resolve(host, port)
            except (OSError, TimeoutError, UnicodeError):
                return "unresolvable", []
            if not addresses:
                return "unresolvable", []
        # One private answer refuses the name: a rebinding name may give a public and a private address at once.
        if not self.policy.may_reach_private(host, port) and not all(is_public(a) for a in addresses):
            return "private address", []
        return None, addresses

    def _note(self, host: str, port: int, decision: str, reason: str) -> None:
        event = EgressEvent(self.sandbox, host[:255], port, decision, reason)
        for observe in (audit, *self._observers):
            observe(event)


def _parse_head(head: bytes) -> tuple[str, str, dict[str, str]] | None:
    """Method, target and headers (names lower-cased) of a request head, or None when it is not one."""
    try:
        text = head.decode("latin-1")
    except UnicodeError:
        return None
    line, *lines = text[:-4].split("\r\n")
    parts = line.split(" ")
    if len(parts) != 3 or not parts[2].startswith("HTTP/1.") or not parts[0].isalpha():
        return None
    headers: dict[str, str] = {}
    for header in lines:
        name, colon, value = header.partition(":")
        if not colon or not name or name != name.strip() or "\n" in header:
            return None
        key = name.lower()
        if key == "host" and key in headers:
            return None  # two Host headers: which one a server believes is anybody's guess
        headers[key] = value.strip()
    return parts[0].upper(), parts[1], headers


def _authority(text: str, default_port: int | None) -> tuple[str, int] | None:
    """(host, port) of `host:port`, `[v6]:port` or, with a default port, a bare host."""
    text = text.strip()
    if text.startswith("["):
        host, bracket, rest = text.partition("]")
        if not bracket:
            return None
        host = host[1:]
        port_text = rest[1:] if rest.startswith(":") else ("" if not rest else None)
    else:
        host, colon, port_text = text.rpartition(":")
        if not colon:
            host, port_text = text, ""
    if port_text is None or not host:
        return None
    if not port_text:
        return None if default_port is None else (normal_host(host), default_port)
    if not port_text.isdigit() or not 0 < int(port_text) < 65536:
        return None
    return normal_host(host), int(port_text)


def _origin_request(method: str, target: str, head: bytes) -> bytes:
    """The request head as the origin server expects it: a path, no proxy headers, one request per connection."""
    after_scheme = target[7:]
    path = after_scheme[len(after_scheme.split("/", 1)[0].split("?", 1)[0]) :] or "/"
    if not path.startswith("/"):
        path = "/" + path
    lines = head.decode("latin-1")[:-4].split("\r\n")
    kept = [line for line in lines[1:] if line.partition(":")[0].strip().lower() not in _HOP_BY_HOP]
    version = lines[0].rsplit(" ", 1)[1]
    return "\r\n".join([f"{method} {path} {version}", *kept, "Connection: close", "", ""]).encode("latin-1")


def _socks_reply(code: int) -> bytes:
    return bytes([SOCKS_VERSION, code, 0, 1, 0, 0, 0, 0, 0, 0])


async def _answer(
    writer: asyncio.StreamWriter, status: int, reason: str, unread: asyncio.StreamReader | None = None
) -> None:
    """Answer with an error; with `unread`, first take (a bounded part of) the request nobody read, since closing
    on unread data resets the connection and the client would never see the answer."""
    if unread is not None:
        with contextlib.suppress(OSError, TimeoutError):
            async with asyncio.timeout(0.2):
                await unread.read(64 * 1024)
    body = f"{reason}\n".encode()
    writer.write(
        f"HTTP/1.1 {status} {reason}\r\nContent-Type: text/plain\r\nContent-Length: {len(body)}\r\n"
        f"Connection: close\r\n\r\n".encode()
        + body
    )
    with contextlib.suppress(OSError):
        await writer.drain()


async def _pump(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, seen: list[float]) -> None:
    loop = asyncio.get_running_loop()
    while data := await reader.read(CHUNK):
        seen[0] = loop.time()
        writer.write(data)
        await writer.drain()
    if writer.can_write_eof():
        with contextlib.suppress(OSError):
            writer.write_eof()


async def _splice(
    reader: asyncio.StreamReader,
    writer: asyncio.StreamWriter,
    upstream_reader: asyncio.StreamReader,
    upstream: asyncio.StreamWriter,
    idle: float,
) -> None:
    """Copy both ways until both sides are done, or until neither side sent anything for `idle` seconds (a
    download keeps the connection alive while the sandbox is silent)."""
    loop = asyncio.get_running_loop()
    seen = [loop.time()]
    pumps = {
        asyncio.ensure_future(_pump(reader, upstream, seen)),
        asyncio.ensure_future(_pump(upstream_reader, writer, seen)),
    }
    try:
        pending = pumps
        while pending:
            done, pending = await asyncio.wait(pending, timeout=idle / 4, return_when=asyncio.FIRST_EXCEPTION)
            if any(task.exception() is not None for task in done) or loop.time() - seen[0] > idle:
                break
    finally:
        for task in pumps:
            task.cancel()
        await asyncio.gather(*pumps, return_exceptions=True)
