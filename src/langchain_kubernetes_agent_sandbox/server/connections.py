"""Bounded HTTP connections, so that no client can hold the server's sockets: a connection that owes the server
a request (the head of a new one, or the rest of a body already answered) gets `header_timeout` to send it, one
that sits between requests gets `keep_alive_timeout`, and the number open has a ceiling far below the open-file
limit. At the ceiling a new connection pushes out the one that has waited on its client longest; it is refused
only when every open connection is serving a request. A request being served is never cut, however long its
response streams (tool calls that run for minutes, a client's SSE stream).

uvicorn's h11 protocol times out neither a request head that never ends nor a connection that never sends a
byte, and its only ceiling (`limit_concurrency`) answers 503 to everyone, /healthz included, so this module
extends that protocol.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import resource
import time
from typing import Any, ClassVar

import h11
from uvicorn.protocols.http.h11_impl import H11Protocol

from .config import ConfigError, ServerConfig

logger = logging.getLogger(__name__)

DEFAULT_MAX_CONNECTIONS = 1024
FILE_LIMIT_SHARE = 4
"""Open connections stay under a quarter of the open-file limit: as many again may arrive in one turn of the
event loop before any is pushed out, and the other half is the provider's (pipes, sandbox connections)."""
REFUSAL_LOG_INTERVAL = 10.0


@dataclasses.dataclass(frozen=True)
class ConnectionLimits:
    max_connections: int
    header_timeout: float
    keep_alive_timeout: float


def open_file_limit() -> int:
    """The soft open-file limit, first raised to the hard limit (a flood should meet our ceiling, not EMFILE)."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard != resource.RLIM_INFINITY and soft != hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
        soft = hard
    return soft


def connection_limits(config: ServerConfig, file_limit: int) -> ConnectionLimits:
    """The limits `config` asks for; a ceiling the open-file limit cannot carry is a `ConfigError`."""
    most = file_limit // FILE_LIMIT_SHARE
    wanted = config.max_connections
    if wanted is not None and wanted > most:
        raise ConfigError(
            f"setting max_connections ({wanted}) needs an open-file limit of at least {wanted * FILE_LIMIT_SHARE}, "
            f"and this process may open {file_limit} files: raise the limit (ulimit -n, LimitNOFILE=, or the "
            f"container runtime's nofile) or lower max_connections to {most} or less"
        )
    chosen = wanted if wanted is not None else min(DEFAULT_MAX_CONNECTIONS, most)
    if chosen < 1:
        raise ConfigError(f"this process may open only {file_limit} files, too few to serve HTTP: raise ulimit -n")
    return ConnectionLimits(chosen, config.header_timeout, config.keep_alive_timeout)


class ConnectionGuard:
    """The open connections of one server, and the order in which those waiting on their clients are pushed out."""

    def __init__(self, limits: ConnectionLimits) -> None:
        self.limits = limits
        self._open: set[GuardedH11Protocol] = set()
        self._waiting: dict[GuardedH11Protocol, None] = {}
        """Open connections serving no request (between requests, or with one not yet whole), longest waiting first."""
        self._refused = 0
        self._refusal_logged = 0.0

    def admit(self, connection: GuardedH11Protocol) -> bool:
        """Make room for `connection` by pushing out the longest waiting one; False when none can go."""
        if len(self._open) >= self.limits.max_connections:
            if not self._waiting:
                self._note_refusal()
                return False
            oldest = next(iter(self._waiting))
            self.leave(oldest)
            oldest.push_out()
        self._open.add(connection)
        return True

    def waiting(self, connection: GuardedH11Protocol) -> None:
        self._waiting.pop(connection, None)
        if connection in self._open:
            self._waiting[connection] = None

    def serving(self, connection: GuardedH11Protocol) -> None:
        self._waiting.pop(connection, None)

    def leave(self, connection: GuardedH11Protocol) -> None:
        self._open.discard(connection)
        self._waiting.pop(connection, None)

    def _note_refusal(self) -> None:
        self._refused += 1
        now = time.monotonic()
        if now - self._refusal_logged >= REFUSAL_LOG_INTERVAL:
            logger.warning(
                "refused %d HTTP connections: all %d open connections are serving requests (max_connections)",
                self._refused,
                self.limits.max_connections,
            )
            self._refused, self._refusal_logged = 0, now


class GuardedH11Protocol(H11Protocol):
    """uvicorn's h11 protocol under a `ConnectionGuard`: each connection is serving a request, or waiting on its
    client with one deadline running (the keep-alive one before the first byte of a request, the header one
    from that byte until the request is whole)."""

    guard: ClassVar[ConnectionGuard]

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._deadline: asyncio.TimerHandle | None = None
        self._owes_bytes = False

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        if not self.guard.admit(self):
            transport.abort()
            return
        self._settle()

    def data_received(self, data: bytes) -> None:
        if self._deadline is not None and not self._owes_bytes:
            self._wait(owes_bytes=True)  # the first byte of a request: from now on its head is due
        super().data_received(data)
        self._settle()

    def on_response_complete(self) -> None:
        super().on_response_complete()
        self._unset_keepalive_if_required()  # one deadline per connection: ours
        self._settle()

    def handle_websocket_upgrade(self, event: h11.Request) -> None:
        """A WebSocket (a preview's) leaves this guard: its protocol is another one from now on, and the previews
        bound how many are open at once (`PreviewLimits.max_websockets`)."""
        self._cancel_deadline()
        self.guard.leave(self)
        super().handle_websocket_upgrade(event)

    def connection_lost(self, exc: Exception | None) -> None:
        self._cancel_deadline()
        self.guard.leave(self)
        super().connection_lost(exc)

    def push_out(self) -> None:
        """Close this connection to make room for a new one (it is only waiting on its client)."""
        self._cancel_deadline()
        self.transport.close()

    def _settle(self) -> None:
        """Serving while a request is; otherwise waiting, with the deadline already running, if one is (bytes that
        h11 discards, such as blank lines, must not buy a connection more time)."""
        if self.transport.is_closing():
            return
        if self.cycle is not None and not self.cycle.response_complete:
            self._cancel_deadline()
            self.guard.serving(self)
        elif self._deadline is None:
            pending, _ = self.conn.trailing_data
            self._wait(owes_bytes=bool(pending) or self.conn.their_state is not h11.IDLE)

    def _wait(self, owes_bytes: bool) -> None:
        self._cancel_deadline()
        self._owes_bytes = owes_bytes
        limits = self.guard.limits
        self._deadline = self.loop.call_later(
            limits.header_timeout if owes_bytes else limits.keep_alive_timeout, self._expire
        )
        self.guard.waiting(self)

    def _expire(self) -> None:
        self._deadline = None
        self.guard.leave(self)
        self.transport.close()

    def _cancel_deadline(self) -> None:
        if self._deadline is not None:
            self._deadline.cancel()
            self._deadline = None


def guarded_protocol(limits: ConnectionLimits) -> type[GuardedH11Protocol]:
    """A protocol class for one server (uvicorn builds protocols from a class), with its own guard."""
    return type("ServerH11Protocol", (GuardedH11Protocol,), {"guard": ConnectionGuard(limits)})
