"""The preview proxy's side toward the sandbox: HTTP/1.1 over connections that a `PortRoute` dials, kept alive
and reused (opening one locally starts a process in the sandbox), and WebSockets over one such connection each.

httpcore does the HTTP framing; only how a connection is opened is ours, so a request can lead nowhere but to the
route's port, whatever its URL or headers say.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Iterable
from typing import Any

import httpcore
from websockets.asyncio.client import ClientConnection, connect

from ...ports import PortRoute, PortUnreachable

MAX_CONNECTIONS = 32
"""Connections to one exposed port at once (a browser opens about six per origin)."""
KEEPALIVE_EXPIRY = 15.0
"""Seconds an idle connection to the port is kept for reuse."""
READ_CHUNK = 1024 * 1024
"""Bytes taken from the connection at once, whatever httpcore asks for (64 KiB): fewer, larger pieces through
the proxy's layers cost less per byte, and h11 takes data of any size."""
MAX_WEBSOCKET_MESSAGE = 16 * 1024 * 1024
"""The largest WebSocket message relayed either way (as the sandbox-routers)."""
CLOSE_TIMEOUT = 2.0
"""Seconds a closing WebSocket waits for the sandbox's server to close its side."""
UPSTREAM_HOST = "localhost"
"""The Host the server in the sandbox sees: development servers accept only their own names by default."""


class _Stream(httpcore.AsyncNetworkStream):
    """An asyncio connection as httpcore's network stream."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self._reader = reader
        self._writer = writer

    async def read(self, max_bytes: int, timeout: float | None = None) -> bytes:
        try:
            async with asyncio.timeout(timeout):
                return await self._reader.read(max(max_bytes, READ_CHUNK))
        except TimeoutError:
            raise httpcore.ReadTimeout("the server in the sandbox sent nothing in time") from None
        except OSError as error:
            raise httpcore.ReadError(str(error)) from None

    async def write(self, buffer: bytes, timeout: float | None = None) -> None:
        try:
            async with asyncio.timeout(timeout):
                self._writer.write(buffer)
                await self._writer.drain()
        except TimeoutError:
            raise httpcore.WriteTimeout("the server in the sandbox took nothing in time") from None
        except OSError as error:
            raise httpcore.WriteError(str(error)) from None

    async def aclose(self) -> None:
        self._writer.close()
        with contextlib.suppress(OSError):
            await self._writer.wait_closed()

    def get_extra_info(self, info: str) -> Any:
        if info == "is_readable":  # asked of an idle connection: readable means the server closed it
            return self._reader.at_eof() or self._writer.transport.is_closing()
        return self._writer.get_extra_info(info)


class _RouteBackend(httpcore.AsyncNetworkBackend):
    """Every connection httpcore asks for, whatever host it names, is one the route dials."""

    def __init__(self, route: PortRoute) -> None:
        self._route = route

    async def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,
        local_address: str | None = None,
        socket_options: Iterable[Any] | None = None,
    ) -> httpcore.AsyncNetworkStream:
        reader, writer = await open_stream(self._route)
        return _Stream(reader, writer)

    async def connect_unix_socket(
        self, path: str, timeout: float | None = None, socket_options: Iterable[Any] | None = None
    ) -> httpcore.AsyncNetworkStream:
        raise httpcore.ConnectError("previews reach ports, not sockets")

    async def sleep(self, seconds: float) -> None:
        await asyncio.sleep(seconds)


async def open_stream(route: PortRoute) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    """A new connection to the route's port; `httpcore.ConnectError` saying why when there is none."""
    try:
        stream = await route.dial()
    except PortUnreachable as error:
        raise httpcore.ConnectError(str(error)) from None
    try:
        return await asyncio.open_connection(
            sock=stream.sock, ssl=stream.tls, server_hostname=stream.server_name, limit=READ_CHUNK
        )
    except OSError as error:
        stream.sock.close()
        raise httpcore.ConnectError(f"the connection to port {route.port} failed: {error}") from None


class Upstream:
    """The connections to one exposed port, and how a request's target becomes the URL sent on them."""

    def __init__(self, route: PortRoute) -> None:
        self.route = route
        self.pool = httpcore.AsyncConnectionPool(
            network_backend=_RouteBackend(route), max_connections=MAX_CONNECTIONS, keepalive_expiry=KEEPALIVE_EXPIRY
        )

    def url(self, target: str) -> httpcore.URL:
        """`target` (path and query, starting with '/') on the port."""
        return httpcore.URL(
            scheme=b"http",
            host=UPSTREAM_HOST.encode(),
            port=self.route.port,
            target=(self.route.path_prefix + target).encode("latin-1"),
        )

    async def websocket(
        self, target: str, headers: list[tuple[str, str]], subprotocols: list[str], open_timeout: float
    ) -> ClientConnection:
        """A WebSocket to `target` on the port over a connection of its own (`OSError` and websockets' errors
        when there is none)."""
        try:
            stream = await self.route.dial()
        except PortUnreachable as error:
            raise ConnectionRefusedError(str(error)) from None
        scheme = "wss" if stream.tls is not None else "ws"
        options: dict[str, Any] = {"ssl": stream.tls, "server_hostname": stream.server_name} if stream.tls else {}
        try:
            return await connect(
                f"{scheme}://{UPSTREAM_HOST}:{self.route.port}{self.route.path_prefix}{target}",
                sock=stream.sock,
                additional_headers=[*headers, *self.route.headers],
                subprotocols=[*subprotocols] or None,  # type: ignore[list-item]
                max_size=MAX_WEBSOCKET_MESSAGE,
                open_timeout=open_timeout,
                close_timeout=CLOSE_TIMEOUT,
                proxy=None,
                compression=None,
                user_agent_header=None,
                **options,
            )
        except BaseException:
            stream.sock.close()
            raise

    async def aclose(self) -> None:
        await self.pool.aclose()
