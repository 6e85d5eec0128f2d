"""How the server reaches a TCP port inside a sandbox: the one capability previews need from a provider.

A provider says how to open a byte stream that leads to the port (locally a connection that the sandbox's agent
relays inside the sandbox's own network namespace; on Kubernetes a connection to the sandbox-router or straight to
the pod) and which headers route each HTTP request sent on it there. The port is the only choice a caller makes:
no host, address or URL comes from a request, so a preview can only ever lead to the sandbox's own ports.
"""

from __future__ import annotations

import socket
import ssl
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from .errors import InvalidArgumentError

Dial = Callable[[], Awaitable["Stream"]]
"""Opens one new connection to the port (`PortUnreachable` when it cannot)."""


@dataclass(frozen=True)
class Stream:
    """A connected stream socket, and the TLS to speak over it, if any."""

    sock: socket.socket
    tls: ssl.SSLContext | None = None
    server_name: str | None = None


@dataclass(frozen=True)
class PortRoute:
    """How HTTP requests and WebSockets reach port `port` of one sandbox."""

    port: int
    dial: Dial
    headers: tuple[tuple[str, str], ...] = ()
    """Sent with every request, after the client's own headers of those names are dropped (routing headers)."""
    path_prefix: str = ""
    """Put before every request's path (a router mounted under a path)."""
    routed: bool = False
    """Whether a proxy (the sandbox-router) answers for the port: its own 502 then means nothing listens there."""


class PortUnreachable(Exception):
    """No connection to the port could be made: nothing listens there, or the sandbox cannot be reached."""


def check_port(port: int) -> int:
    """`port` when it is a TCP port a server in a sandbox can listen on."""
    if isinstance(port, bool) or not isinstance(port, int) or not 0 < port < 65536:
        raise InvalidArgumentError(f"Port {port!r} is not a TCP port: give one from 1 to 65535.")
    return port
