"""Who is calling: the principal that owns sessions, taken from the verified token, never from the transport."""

from __future__ import annotations

from contextvars import ContextVar
from typing import Any

from mcp.server.auth.middleware.auth_context import get_access_token
from mcp.server.auth.middleware.bearer_auth import AuthenticatedUser

current_principal: ContextVar[str] = ContextVar("current_principal")


def principal_of(request: Any, fallback: str) -> str:
    """The token's subject when the HTTP request was authenticated, else `fallback` (stdio's local user).

    In stateful streamable HTTP the tool runs in the MCP session's task, not the request's, so the request
    object carried with the message is asked first, and the auth context variable only second.
    """
    scope = getattr(request, "scope", None)
    user = scope.get("user") if isinstance(scope, dict) else None
    token = user.access_token if isinstance(user, AuthenticatedUser) else get_access_token()
    if token is None:
        return fallback
    return token.subject or token.client_id
