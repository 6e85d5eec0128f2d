"""Ports of a pod, for previews: reached where the agent's port is (through the sandbox-router with
`X-Sandbox-Port`, or straight at the pod in-cluster), by HTTP requests instead of the agent's WebSocket.

The address comes from the connection settings and the Sandbox object only; the request chooses nothing but
the port, and the routing headers are ours (the proxy drops any the client sent).
"""

from __future__ import annotations

import asyncio
import socket
import ssl
import urllib.parse

from ...engine import budget, wire
from ...ports import PortRoute, PortUnreachable, Stream
from .agent import Endpoint


def route_of(endpoint: Endpoint, port: int) -> PortRoute:
    """The route to `port` from the agent's endpoint for that port: the same address and headers, minus the agent's
    path; behind a router (any headers to route by) the router's own 502 means the port is closed."""
    url, headers, tls = endpoint
    parts = urllib.parse.urlsplit(url)
    host = parts.hostname or ""
    secure = parts.scheme == "wss"
    address = (host, parts.port or (443 if secure else 80))
    prefix = parts.path.removesuffix(wire.PORT_PATH).rstrip("/")
    chosen_tls = tls if tls is not None else (_default_tls() if secure else None)

    async def dial() -> Stream:
        return Stream(await _connected(address), chosen_tls, host if chosen_tls is not None else None)

    return PortRoute(port, dial, tuple(headers.items()), prefix, routed=bool(headers))


def _default_tls() -> ssl.SSLContext:
    return ssl.create_default_context()


async def _connected(address: tuple[str, int]) -> socket.socket:
    loop = asyncio.get_running_loop()
    where = f"{address[0]}:{address[1]}"
    try:
        async with asyncio.timeout(budget.AGENT_CONNECT):
            infos = await loop.getaddrinfo(*address, type=socket.SOCK_STREAM)
            family, kind, protocol, _, target = infos[0]
            sock = socket.socket(family, kind, protocol)
            try:
                sock.setblocking(False)
                await loop.sock_connect(sock, target)
            except BaseException:
                sock.close()
                raise
    except (OSError, TimeoutError) as error:
        reason = (str(error) if isinstance(error, OSError) else "") or "no answer in time"
        raise PortUnreachable(f"the sandbox's address {where} could not be reached ({reason})") from None
    return sock
