"""Serving an ASGI app on a loopback socket we own, several per event loop, with shutdown under our control."""

from __future__ import annotations

import contextlib
import socket
from collections.abc import Iterator

import uvicorn
from starlette.types import ASGIApp

BACKLOG = 2048
"""The stdlib default of 5 drops connections under 16 concurrent clients."""


def listen(host: str = "127.0.0.1", port: int = 0) -> socket.socket:
    """A listening socket with a big backlog; port 0 picks a free one.

    The protocol is named: asyncio sets TCP_NODELAY only on sockets whose `proto` is IPPROTO_TCP, and accepted
    sockets inherit it, so with the default 0 every answer's body would wait out a 40 ms delayed ACK.
    """
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((host, port))
    sock.listen(BACKLOG)
    sock.setblocking(False)
    return sock


def url_of(sock: socket.socket) -> str:
    host, port = sock.getsockname()[:2]
    return f"http://{host}:{port}"


class Server(uvicorn.Server):
    """A uvicorn server that leaves signal handling to its owner (several run on one loop).

    asyncio transports set TCP_NODELAY on sockets accepted from `listen`, so answers are not held back by
    delayed ACKs.
    """

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield


def server_for(app: ASGIApp) -> Server:
    config = uvicorn.Config(
        app, log_level="warning", lifespan="off", timeout_keep_alive=75, timeout_graceful_shutdown=1
    )
    return Server(config)
