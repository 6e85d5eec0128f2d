"""The previews this server serves: each an unguessable token for one port of one session of one principal.

They live in this server process (a preview URL is served by the replica that made it) and end with the session:
every request checks that the session is still open, and closing the session here ends its previews at once.
Tokens (and the tickets of browser links, see `browser`) are looked up by their SHA-256 digest, so the lookup's
timing says nothing about a guess.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from .upstream import Upstream

PATH_PREFIX = "/preview/"
TOKEN_BYTES = 32
"""256 random bits per preview token, browser key and ticket."""
TICKET_SECONDS = 300.0
"""How long a browser link waits for its one use: long enough for a person to click it in a chat."""
MAX_TICKETS = 8
"""Unused browser links kept per preview; a newer one retires the oldest."""


@dataclass(frozen=True)
class PreviewLimits:
    """What one preview may pass; the server's settings choose them (`preview_*`)."""

    max_response_bytes: int = 1024 * 1024 * 1024
    """Bytes of one HTTP response's body, and of what one WebSocket sends from the sandbox, before it is cut."""
    max_response_seconds: float = 300.0
    """Seconds one HTTP exchange may last, from the request to the response's last byte, before it is cut."""
    max_websockets: int = 256
    """Preview WebSockets relayed at once by this server, all sessions together."""
    max_per_session: int = 16
    """Ports one session may expose at once."""
    connect_timeout: float = 15.0
    """Seconds to open a connection to the port (locally that starts a process in the sandbox)."""


def new_token() -> str:
    return secrets.token_urlsafe(TOKEN_BYTES)


def _digest(token: str) -> bytes:
    return hashlib.sha256(token.encode("utf-8", "surrogateescape")).digest()


@dataclass(eq=False)
class Preview:
    token: str
    principal: str
    session_id: str
    port: int
    upstream: Upstream
    browser_key: str = field(default_factory=new_token)
    """What the cookie of a browser link holds: it admits a browser to this preview alone."""
    relays: set[asyncio.Task[None]] = field(default_factory=set)
    """The WebSockets relayed now, cancelled when the preview ends."""

    @property
    def path(self) -> str:
        """Where the preview is served on its listener; the app in the sandbox sees what follows."""
        return f"{PATH_PREFIX}{self.token}/"

    async def end(self) -> None:
        for relay in list(self.relays):
            relay.cancel()
        for relay in list(self.relays):
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await relay
        await self.upstream.aclose()


class PreviewTable:
    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._by_digest: dict[bytes, Preview] = {}
        self._by_port: dict[tuple[str, int], Preview] = {}
        self._tickets: dict[bytes, tuple[Preview, float]] = {}
        """Unused browser links by digest: their preview and when they expire, oldest first."""
        self._clock = clock

    def find(self, token: str) -> Preview | None:
        return self._by_digest.get(_digest(token))

    def of(self, session_id: str, port: int) -> Preview | None:
        return self._by_port.get((session_id, port))

    def of_session(self, session_id: str) -> list[Preview]:
        return [preview for (session, _), preview in self._by_port.items() if session == session_id]

    def all(self) -> list[Preview]:
        return list(self._by_port.values())

    def add(self, preview: Preview) -> None:
        self._by_digest[_digest(preview.token)] = preview
        self._by_port[(preview.session_id, preview.port)] = preview

    def remove(self, preview: Preview) -> bool:
        """Forget `preview` and its browser links; False when it was gone already."""
        if self._by_port.get((preview.session_id, preview.port)) is not preview:
            return False
        del self._by_port[(preview.session_id, preview.port)]
        self._by_digest.pop(_digest(preview.token), None)
        self._tickets = {digest: entry for digest, entry in self._tickets.items() if entry[0] is not preview}
        return True

    def new_ticket(self, preview: Preview) -> str:
        """A ticket for one browser link to `preview`, valid for `TICKET_SECONDS`."""
        now = self._clock()
        self._tickets = {digest: entry for digest, entry in self._tickets.items() if entry[1] > now}
        unused = [digest for digest, (held, _) in self._tickets.items() if held is preview]
        for digest in unused[: max(0, len(unused) - MAX_TICKETS + 1)]:
            del self._tickets[digest]
        ticket = new_token()
        self._tickets[_digest(ticket)] = (preview, now + TICKET_SECONDS)
        return ticket

    def redeem(self, ticket: str) -> Preview | None:
        """The preview of a browser link's ticket, which is spent; None when it is unknown, spent or expired."""
        preview, expires = self._tickets.pop(_digest(ticket), (None, 0.0))
        return preview if preview is not None and self._clock() < expires else None
