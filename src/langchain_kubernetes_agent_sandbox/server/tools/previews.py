"""expose_port and unexpose_port: reach a server running inside the session's sandbox through a preview URL."""

from __future__ import annotations

from typing import Annotated

from mcp.types import CallToolResult, ToolAnnotations
from pydantic import Field

from ..context import context
from ..models import Rendered
from ..previews.table import TICKET_SECONDS
from ..principal import current_principal
from . import ToolSpec, reply
from .commands import SessionId

Port = Annotated[
    int, Field(ge=1, le=65535, description="The TCP port the server listens on inside the sandbox, e.g. 8000.")
]


class PortPreview(Rendered):
    session_id: str
    port: int
    url: str
    bearer_token_required: bool
    """Whether requests to the URL must carry the caller's bearer token (HTTP with authentication)."""
    browser_url: str
    """What a person opens in a browser: where a bearer token is required, a link that works once, within
    minutes, and lets that browser in; otherwise the URL itself."""

    def render(self) -> str:
        if self.bearer_token_required:
            how = (
                "send your MCP bearer token with each request (Authorization: Bearer ...), e.g. "
                f'curl -H "Authorization: Bearer $TOKEN" {self.url} ; in a browser, open {self.browser_url} '
                f"(one use, within {TICKET_SECONDS / 60:g} minutes; call expose_port again for another)"
            )
        else:
            how = f"open it from this machine, e.g. curl {self.url}; the URL itself is the key, keep it private"
        return (
            f"Port {self.port} of session {self.session_id} is previewed at {self.url}\n"
            f"To use it, {how}. WebSockets work at the same URL with ws:// (or wss://). It stops working on "
            "unexpose_port or when the session ends."
        )


class UnexposedPort(Rendered):
    session_id: str
    port: int
    unexposed: bool
    """False when the port had no preview."""

    def render(self) -> str:
        if not self.unexposed:
            return f"Port {self.port} of session {self.session_id} had no preview; nothing changed."
        return f"The preview of port {self.port} of session {self.session_id} is gone; its URL no longer works."


async def expose_port(port: Port, session_id: SessionId = None) -> Annotated[CallToolResult, PortPreview]:
    """Get a URL through which you, and nobody else, reach an HTTP or WebSocket server listening on `port`
    inside the session's sandbox (a web app, an API, a notebook you started there).

    Start the server first, listening on 127.0.0.1 or 0.0.0.0 in the sandbox, for instance
    execute("python3 -m http.server 8000", background=true); the sandbox's ports are not reachable otherwise.
    Over HTTP, requests to the URL need the same Authorization: Bearer token as this MCP endpoint, and
    browser_url is a one-time link for a person to open in a browser; over stdio the URL (on this machine's
    loopback) is the key itself. The app sees paths relative to the URL, so it should
    use relative links. Streaming responses, large bodies and WebSockets pass; each response is bounded in size
    and duration by the server's settings. A port with nothing listening gives a 502 page that says so. Calling
    it again for the same port returns the same URL; it ends with unexpose_port or with the session.
    """
    principal = current_principal.get()
    session = await context().registry.resolve(principal, session_id)
    previews = context().previews
    preview, url = await previews.expose(principal, session, port)
    return reply(
        PortPreview(
            session_id=session.id,
            port=port,
            url=url,
            bearer_token_required=previews.authenticated,
            browser_url=previews.browser_url(preview, url),
        )
    )


async def unexpose_port(port: Port, session_id: SessionId = None) -> Annotated[CallToolResult, UnexposedPort]:
    """End the preview of `port` in the session: its URL stops working at once, and WebSockets open through it
    are closed. The server in the sandbox keeps running."""
    session = await context().registry.resolve(current_principal.get(), session_id)
    unexposed = await context().previews.unexpose(session.id, port)
    return reply(UnexposedPort(session_id=session.id, port=port, unexposed=unexposed))


OPENS = ToolAnnotations(readOnlyHint=False, destructiveHint=False, idempotentHint=True, openWorldHint=False)
ENDS = ToolAnnotations(readOnlyHint=False, destructiveHint=False, idempotentHint=True, openWorldHint=False)
TOOLS = (
    ToolSpec(expose_port, OPENS),
    ToolSpec(unexpose_port, ENDS),
)
