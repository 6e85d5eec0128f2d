"""The MCP server: FastMCP with the sandbox tools, whose failures reach the client as tool errors that say what
went wrong and what to do (`failures.py`)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from mcp.server.auth.provider import TokenVerifier
from mcp.server.auth.settings import AuthSettings
from mcp.server.fastmcp import FastMCP
from mcp.server.fastmcp.exceptions import ToolError
from mcp.server.transport_security import TransportSecuritySettings
from mcp.types import ContentBlock

from ..sessions import SessionRegistry
from .context import ToolContext, current_context
from .era_probe import serve_stdio
from .failures import classify
from .metrics import ServerMetrics
from .observe import observed
from .previews import PreviewLimits, Previews
from .principal import current_principal, principal_of
from .tool_limits import ToolLimits
from .tools import commands, files, jobs, previews, sessions

INSTRUCTIONS = """\
Run code and shell commands in an isolated Linux sandbox, and move files in and out of it.
Every call without session_id works in your default session, created on first use; its files persist between
calls until the session closes or idles out. The working directory is /app; relative paths resolve there, and
an absolute path means the same file to every tool. Use create_session for a separate, clean sandbox, and
close_session when done with it."""


class SandboxMCP(FastMCP[Any]):
    """FastMCP that knows the caller's principal for every tool call and turns failures into actionable text."""

    def __init__(
        self,
        registry: SessionRegistry,
        *,
        local_principal: str,
        limits: ToolLimits | None = None,
        token_verifier: TokenVerifier | None = None,
        auth: AuthSettings | None = None,
        transport_security: TransportSecuritySettings | None = None,
        stateless_http: bool = False,
        json_response: bool = False,
        host: str = "127.0.0.1",
        port: int = 8000,
        metrics: ServerMetrics | None = None,
        preview_limits: PreviewLimits | None = None,
    ) -> None:
        self.registry = registry
        self.metrics = metrics or ServerMetrics()
        self.local_principal = local_principal
        self.limits = limits or ToolLimits()
        super().__init__(
            name="kubernetes-agent-sandbox",
            instructions=INSTRUCTIONS,
            token_verifier=token_verifier,
            auth=auth,
            transport_security=transport_security,
            stateless_http=stateless_http,
            json_response=json_response,
            host=host,
            port=port,
            max_request_body_size=request_body_bound(self.limits),
            log_level="WARNING",
        )
        self.previews = Previews(registry, preview_limits or PreviewLimits(), self.metrics)
        self.context = ToolContext(registry, self.limits, self.previews)
        for module in (commands, files, jobs, sessions, previews):
            for spec in module.TOOLS:
                spec.add_to(self, self.limits)

    def serve_previews(self, base_url: str) -> None:
        """Serve previews on this server's own HTTP app, reached at `base_url`, with its authentication; call it
        before `streamable_http_app()` builds the app (once: a second call changes nothing)."""
        if self.previews.base_url is not None:
            return
        authenticated = self._token_verifier is not None
        # FastMCP's custom_route takes HTTP routes only, and previews take WebSockets as well
        self._custom_starlette_routes.extend(self.previews.serve_on(base_url, authenticated=authenticated))  # type: ignore[arg-type]

    async def run_stdio_async(self) -> None:
        """Serve stdio, answering the era probe of 2026-07-28 clients without the SDK's warning (`era_probe`)."""
        await serve_stdio(self._mcp_server)

    async def call_tool(self, name: str, arguments: dict[str, Any]) -> Sequence[ContentBlock] | dict[str, Any]:
        try:
            request = self._mcp_server.request_context.request
        except LookupError:
            request = None
        principal = principal_of(request, self.local_principal)
        token = current_principal.set(principal)
        context_token = current_context.set(self.context)
        try:
            with observed(self.metrics, name, principal, arguments) as call:
                try:
                    return await super().call_tool(name, arguments)
                except ToolError as error:
                    failure = classify(error, name)
                    call.outcome = failure.code
                    # FastMCP passes a CallToolResult through as it is: the error with its structured content
                    return failure.as_result()  # type: ignore[return-value]
        finally:
            current_context.reset(context_token)
            current_principal.reset(token)


def request_body_bound(limits: ToolLimits) -> int:
    """The largest HTTP request a tool call needs: one piece of a file, base64-encoded, plus the JSON around it."""
    return limits.max_transfer_bytes * 4 // 3 + 1024 * 1024
