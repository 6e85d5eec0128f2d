"""The MCP server: FastMCP with the sandbox tools, whose errors reach the client as text that says what to do."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from mcp.server.auth.provider import TokenVerifier
from mcp.server.auth.settings import AuthSettings
from mcp.server.fastmcp import FastMCP
from mcp.server.fastmcp.exceptions import ToolError
from mcp.server.transport_security import TransportSecuritySettings
from mcp.types import ContentBlock
from pydantic import ValidationError

from ..errors import SandboxError
from ..sessions import SessionRegistry
from .era_probe import serve_stdio
from .metrics import ServerMetrics
from .observe import observed
from .principal import current_principal, principal_of

logger = logging.getLogger(__name__)

INSTRUCTIONS = """\
Run code and shell commands in an isolated Linux sandbox, and move files in and out of it.
Every call without session_id works in your default session, created on first use; its files persist between
calls until the session closes or idles out. The working directory is /app; relative paths resolve there, and
an absolute path means the same file to every tool. Use create_session for a separate, clean sandbox, and
close_session when done with it."""


@dataclass(frozen=True)
class ToolLimits:
    """Bounds the tools add on top of the sandbox's own limits."""

    max_transfer_bytes: int = 10 * 1024 * 1024
    """Largest file upload_file accepts and download_file returns (content travels inside one MCP message)."""
    detach_after: float = 20.0
    """Seconds execute and execute_python wait before a command still running becomes a job (MCP clients often
    give up at 60 s, the Kubernetes router at 180 s)."""


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
            max_request_body_size=self.limits.max_transfer_bytes * 4 // 3 + 1024 * 1024,
            log_level="WARNING",
        )
        from .tools import commands, files, jobs, sessions

        for module in (commands, files, jobs, sessions):
            module.register(self)

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
        try:
            with observed(self.metrics, name, principal, arguments) as call:
                try:
                    result = await super().call_tool(name, arguments)
                except ToolError as error:
                    call.failed(error)
                    raise ToolError(describe_failure(name, error)) from None
                call.succeeded(result)
                return result
        finally:
            current_principal.reset(token)


def describe_failure(tool: str, error: ToolError) -> str:
    """One line (or a few) an LLM can act on: the error's code, its cause and the remedy, never a traceback."""
    cause = error.__cause__
    if isinstance(cause, ValidationError):
        problems = "; ".join(
            f"{'.'.join(str(part) for part in problem['loc']) or 'arguments'}: {problem['msg']}"
            for problem in cause.errors(include_url=False)
        )
        return f"invalid_argument: {problems}. Fix the argument and call {tool} again."
    if isinstance(cause, SandboxError):
        return f"{cause.code}: {cause}"
    if cause is None:
        return str(error)
    logger.error("tool %s failed unexpectedly", tool, exc_info=cause)
    return (
        f"internal_error: {tool} failed unexpectedly ({type(cause).__name__}); the server log has the details. "
        "Retry once; if it fails again, report it to the server's operator."
    )
