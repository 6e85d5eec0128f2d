"""The host-side egress proxy of one sandbox: HTTP CONNECT, plain HTTP and SOCKS5 on one listener.

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
import contextvars
import ipaddress
import logging
import socket
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass

from .pipe import Pipe
from .policy import EgressPolicy, IpAddress, is_public, literal, normal_host

audit_logger = logging.getLogger("langchain_kubernetes_agent_sandbox.audit")

Resolver = Callable[[str, int], Awaitable[list[IpAddress]]]
Observer = Callable[["EgressEvent"], None]

SOCKS_VERSION = 5
_LINGER_SECONDS = 1.0
_LINGER_BYTES = 1024 * 1024
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
    max_total_connections: int = 1024
    """Connections all sandboxes of one server may hold open at once: each holds six descriptors (two sockets,
    two pipes), and the server's open-file limit must carry them beside everything else."""
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


_client_name: contextvars.ContextVar[str] = contextvars.ContextVar("egress_client", default="?")
"""Who the decisions of the connection being served are about (each connection is a task of its own)."""


def _peer(sock: socket.socket) -> str:
    try:
        return str(sock.getpeername()[0])
    except (OSError, IndexError, TypeError):
        return "?"


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


class _Client:
    """The sandbox's end of one connection during the handshake: reads bounded by the head limit."""

    def __init__(self, sock: socket.socket, limit: int) -> None:
        self.sock = sock
        self.buffer = bytearray()
        self._limit = limit
        self._loop = asyncio.get_running_loop()

    async def _more(self) -> None:
        data = await self._loop.sock_recv(self.sock, 64 * 1024)
        if not data:
            raise EOFError
        self.buffer += data

    async def exactly(self, count: int) -> bytes:
        while len(self.buffer) < count:
            await self._more()
        taken = bytes(self.buffer[:count])
        del self.buffer[:count]
        return taken

    async def head(self) -> bytes | None:
        """The request head through its blank line, or None when it exceeds the limit."""
        while (end := self.buffer.find(b"\r\n\r\n")) < 0:
            if len(self.buffer) > self._limit:
                return None
            await self._more()
        if end + 4 > self._limit:
            return None
        return await self.exactly(end + 4)

    async def send(self, data: bytes) -> None:
        await self._loop.sock_sendall(self.sock, data)

    async def linger(self) -> None:
        """After an answer: stop sending and read (bounded in bytes and time) what the client still sends, since
        closing on unread data resets the connection and the client might never see the answer."""
        with contextlib.suppress(OSError):
            self.sock.shutdown(socket.SHUT_WR)
        taken = 0
        with contextlib.suppress(OSError, TimeoutError):
            async with asyncio.timeout(_LINGER_SECONDS):
                while taken < _LINGER_BYTES and (data := await self._loop.sock_recv(self.sock, 64 * 1024)):
                    taken += len(data)

    def rest(self) -> bytes:
        """What the client sent past the handshake (its first bytes for the target)."""
        rest = bytes(self.buffer)
        self.buffer.clear()
        return rest


class EgressProxy:
    """Serves one sandbox; `serve` takes one connection from it."""

    def __init__(
        self,
        sandbox: str | None,
        policy: EgressPolicy,
        *,
        resolver: Resolver = system_resolver,
        limits: ProxyLimits | None = None,
        observers: Sequence[Observer] = (),
        everyone: set[socket.socket] | None = None,
    ) -> None:
        """`everyone`: the connections of all the server's proxies, which `max_total_connections` bounds."""
        self.sandbox = sandbox
        """Who the audit lines name; None for a proxy shared by many (in a cluster): each client's address."""
        self.policy = policy
        self.limits = limits or ProxyLimits()
        self._resolve = resolver
        self._observers = observers
        """Read at each decision, so an observer added later sees the connections from then on."""
        self._open: set[socket.socket] = set()
        self._everyone = everyone if everyone is not None else set()
        self._pipes: set[Pipe] = set()

    def abort(self) -> None:
        """End every connection at once, the sandbox's and the ones to its targets."""
        for pipe in list(self._pipes):
            pipe.abort()
        for sock in list(self._open):
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)

    async def serve(self, sock: socket.socket) -> None:
        """One connection from the sandbox (non-blocking); closes it."""
        client = _Client(sock, self.limits.max_head_bytes)
        _client_name.set(self.sandbox or _peer(sock))
        self._open.add(sock)
        self._everyone.add(sock)
        try:
            mine, limit = len(self._open), self.limits.max_connections
            if mine > limit or len(self._everyone) > self.limits.max_total_connections:
                self._note("?", 0, "refused", "too many connections")
                # Answering (and lingering to be heard) is itself bounded: past twice the limit, or past the
                # server's, connections are closed at once, so a flood cannot hold the server's descriptors.
                if mine <= 2 * limit and len(self._everyone) <= self.limits.max_total_connections:
                    await _answer(client, 503, "Too many connections")
                return
            async with asyncio.timeout(self.limits.head_timeout):
                first = await client.exactly(1)
                handshake = self._socks(client) if first[0] == SOCKS_VERSION else self._http(first, client)
                joined = await handshake
            if joined is not None:
                upstream, answer = joined
                await self._join(client, upstream, answer)
        except (OSError, EOFError, TimeoutError, ValueError):
            pass
        finally:
            self._open.discard(sock)
            self._everyone.discard(sock)
            sock.close()

    async def _join(self, client: _Client, upstream: socket.socket, answer: bytes) -> None:
        pipe = Pipe(self.limits.idle_timeout)
        self._pipes.add(pipe)
        try:
            await pipe.run(client.sock, upstream, first=client.rest(), answer=answer)
        finally:
            self._pipes.discard(pipe)
            upstream.close()

    async def _http(self, first: bytes, client: _Client) -> tuple[socket.socket, bytes] | None:
        client.buffer[:0] = first
        head = await client.head()
        if head is None:
            await _answer(client, 431, "Request head too large")
            return None
        request = _parse_head(head)
        if request is None:
            await _answer(client, 400, "Malformed proxy request")
            return None
        method, target, headers = request
        if method == "CONNECT":
            authority = _authority(target, None)
        elif target.lower().startswith("http://"):
            authority = _authority(target[7:].split("/", 1)[0].split("?", 1)[0], 80)
        else:
            # https:// in a plain request, an origin-form path, ftp://: nothing this proxy forwards
            await _answer(client, 400, "Only CONNECT and absolute http:// requests are proxied")
            return None
        if authority is None:
            await _answer(client, 400, "Malformed target")
            return None
        host, port = authority
        named = headers.get("host")
        if named is not None and _authority(named, port) != (host, port):
            self._note(host, port, "refused", "host header differs from target")
            await _answer(client, 403, "The Host header names another host than the request's target")
            return None
        try:
            upstream = await self._connect(host, port)
        except Refused as refused:
            await _answer(client, 502 if str(refused) == "unreachable" else 403, f"Egress refused: {refused}")
            return None
        if method == "CONNECT":
            return upstream, b"HTTP/1.1 200 Connection established\r\n\r\n"
        client.buffer[:0] = _origin_request(method, target, head)
        return upstream, b""

    async def _socks(self, client: _Client) -> tuple[socket.socket, bytes] | None:
        count = (await client.exactly(1))[0]
        methods = await client.exactly(count)
        if 0 not in methods:
            await client.send(b"\x05\xff")
            return None
        await client.send(b"\x05\x00")
        version, command, _, kind = await client.exactly(4)
        if kind == 1:
            host = str(ipaddress.IPv4Address(await client.exactly(4)))
        elif kind == 4:
            host = str(ipaddress.IPv6Address(await client.exactly(16)))
        elif kind == 3:
            host = (await client.exactly((await client.exactly(1))[0])).decode("ascii", "replace")
        else:
            await client.send(_socks_reply(8))
            return None
        port = int.from_bytes(await client.exactly(2), "big")
        if version != SOCKS_VERSION or command != 1:
            await client.send(_socks_reply(7))  # only CONNECT: no BIND, no UDP
            return None
        try:
            upstream = await self._connect(host, port)
        except Refused as refused:
            await client.send(_socks_reply(_SOCKS_REFUSED.get(str(refused), 5)))
            return None
        return upstream, _socks_reply(0)

    async def _connect(self, host: str, port: int) -> socket.socket:
        """A connection to `host:port` if the policy allows it and every address of the name is one it may reach."""
        host = normal_host(host)
        reason = self.policy.refusal(host, port)
        if reason is None:
            reason, addresses = await self._addresses(host, port)
        if reason is not None:
            self._note(host, port, "refused", reason)
            raise Refused(reason)
        loop = asyncio.get_running_loop()
        for address in addresses:
            upstream = socket.socket(socket.AF_INET6 if address.version == 6 else socket.AF_INET)
            upstream.setblocking(False)
            try:
                async with asyncio.timeout(self.limits.connect_timeout):
                    await loop.sock_connect(upstream, (str(address), port))
            except (OSError, TimeoutError):
                upstream.close()
                continue
            self._note(host, port, "allowed", "connected")
            return upstream
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
        event = EgressEvent(_client_name.get(), host[:255], port, decision, reason)
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


async def _answer(client: _Client, status: int, reason: str) -> None:
    body = f"{reason}\n".encode()
    head = f"HTTP/1.1 {status} {reason}\r\nContent-Type: text/plain\r\nContent-Length: {len(body)}\r\n"
    await client.send(f"{head}Connection: close\r\n\r\n".encode() + body)
    await client.linger()
