"""The tools, grouped by what they act on; each module registers its tools on a `SandboxMCP`."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

from mcp.types import CallToolResult, ContentBlock, TextContent

from ..models import Rendered
from ..observe import record_result


def reply(model: Rendered, *extra: ContentBlock) -> CallToolResult:
    """Structured content for clients that read it, and the model's text rendering for those that do not."""
    record_result(model)
    return CallToolResult(
        content=[TextContent(type="text", text=model.render()), *extra],
        structuredContent=model.structured(),
    )


Tool = TypeVar("Tool", bound=Callable[..., Any])


def annotated(**annotations: Any) -> Callable[[Tool], Tool]:
    """Give a tool's parameters annotations made from the server's settings (bounds, defaults in descriptions),
    which a module-level annotation cannot know; apply it below `@mcp.tool`."""

    def annotate(tool: Tool) -> Tool:
        tool.__annotations__.update(annotations)
        return tool

    return annotate
