"""The tools, grouped by what they act on; each module registers its tools on a `SandboxMCP`."""

from __future__ import annotations

from mcp.types import CallToolResult, ContentBlock, TextContent

from ..models import Rendered


def reply(model: Rendered, *extra: ContentBlock) -> CallToolResult:
    """Structured content for clients that read it, and the model's text rendering for those that do not."""
    return CallToolResult(
        content=[TextContent(type="text", text=model.render()), *extra],
        structuredContent=model.model_dump(mode="json"),
    )
