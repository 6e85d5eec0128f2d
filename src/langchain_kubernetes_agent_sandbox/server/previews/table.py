"""The previews this server serves: each an unguessable token for one port of one session of one principal.

They live in this server process (a preview URL is served by the replica that made it) and end with the session:
every request checks that the session is still open, and closing the session here ends its previews at once.
Tokens are looked up by their SHA-256 digest, so the lookup's timing says nothing about a guess.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import secrets
from dataclasses import dataclass, field

from .upstream import Upstream

TOKEN_BYTES = 32
"""256 random bits per preview token."""


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
    relays: set[asyncio.Task[None]] = field(default_factory=set)
    """The WebSockets relayed now, cancelled when the preview ends."""

    async def end(self) -> None:
        for relay in list(self.relays):
            relay.cancel()
        for relay in list(self.relays):
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await relay
        await self.upstream.aclose()


class PreviewTable:
    def __init__(self) -> None:
        self._by_digest: dict[bytes, Preview] = {}
        self._by_port: dict[tuple[str, int], Preview] = {}

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
        """Forget `preview`; False when it was gone already."""
        if self._by_port.get((preview.session_id, preview.port)) is not preview:
            return False
        del self._by_port[(preview.session_id, preview.port)]
        self._by_digest.pop(_digest(preview.token), None)
        return True
