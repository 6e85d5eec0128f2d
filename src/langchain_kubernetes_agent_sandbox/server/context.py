"""What a tool needs from the server it runs in: the session registry and the tools' limits, for the call in
progress (set by `SandboxMCP.call_tool`, like the caller's principal), so tools are plain functions that
neither import the app nor close over it."""

from __future__ import annotations

from contextvars import ContextVar
from dataclasses import dataclass, field

from ..sessions import SessionRegistry
from .downloads import Downloads
from .previews import Previews
from .tool_limits import ToolLimits


@dataclass(frozen=True)
class ToolContext:
    registry: SessionRegistry
    limits: ToolLimits
    previews: Previews
    downloads: Downloads = field(default_factory=Downloads)


current_context: ContextVar[ToolContext] = ContextVar("current_context")


def context() -> ToolContext:
    """The server of the tool call in progress."""
    return current_context.get()
