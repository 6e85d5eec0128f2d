"""The tools, grouped by what they act on; each module registers its tools on a `SandboxMCP`."""

from __future__ import annotations

import inspect
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, TypeVar

from mcp.types import CallToolResult, ContentBlock, TextContent, ToolAnnotations

from ..models import Rendered
from ..observe import record_result

if TYPE_CHECKING:
    from ..app import SandboxMCP


def reply(model: Rendered, *extra: ContentBlock) -> CallToolResult:
    """Structured content for clients that read it, and the model's text rendering for those that do not."""
    record_result(model)
    return CallToolResult(
        content=[TextContent(type="text", text=model.render()), *extra],
        structuredContent=model.structured(),
    )


Tool = TypeVar("Tool", bound=Callable[..., Any])


def tool(mcp: SandboxMCP, annotations: ToolAnnotations, **parameters: Any) -> Callable[[Tool], Tool]:
    """Register a tool whose description and arguments state the server's live settings: `{detach_after}` in its
    docstring becomes "20 s" (see `ToolLimits.wording`), and each of `parameters` replaces that argument's
    annotation with one built from the settings (bounds, defaults), which a module-level annotation cannot know.
    """

    def register(function: Tool) -> Tool:
        function.__annotations__.update(parameters)
        description = inspect.cleandoc(function.__doc__ or "").format_map(mcp.limits.wording)
        mcp.tool(annotations=annotations, description=description)(function)
        return function

    return register
