"""The tools, grouped by what they act on: plain functions that take what they need from `context()`; each
module lists them in `TOOLS`, which the app registers."""

from __future__ import annotations

import functools
import inspect
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from mcp.server.fastmcp import FastMCP
from mcp.types import CallToolResult, ContentBlock, TextContent, ToolAnnotations

from ...errors import TOOL_ERROR_META
from ...sessions import suspension
from ..models import Rendered
from ..observe import record_result
from ..tool_limits import ToolLimits

RESUMED_META = TOOL_ERROR_META.rsplit("/", 1)[0] + "/resumed"
"""The key of a tool result's `_meta` that names the session the call resumed (see `sessions.suspension`)."""


def reply(model: Rendered, *extra: ContentBlock) -> CallToolResult:
    """Structured content for clients that read it, and the model's text rendering for those that do not; a call
    that had to resume its session says so first, in the text and in `_meta`."""
    record_result(model)
    content: list[ContentBlock] = [TextContent(type="text", text=model.render()), *extra]
    resumed = suspension.resumed.get()
    if resumed is None:
        return CallToolResult(content=content, structuredContent=model.structured())
    note = TextContent(type="text", text=suspension.resumed_note(resumed))
    return CallToolResult(content=[note, *content], structuredContent=model.structured(), _meta={RESUMED_META: resumed})


Live = Mapping[str, Callable[[ToolLimits], Any]]
"""A tool's arguments whose annotation is made from the server's settings (bounds, defaults), by name."""


@dataclass(frozen=True)
class ToolSpec:
    """A tool as its module declares it: a plain async function (its docstring is what the model reads, with
    `{detach_after}` and the like standing for the live values of `ToolLimits.wording`), its annotations, and
    the arguments `live` annotates from the settings."""

    function: Callable[..., Awaitable[Any]]
    annotations: ToolAnnotations
    live: Live = field(default_factory=dict)

    def add_to(self, mcp: FastMCP[Any], limits: ToolLimits) -> None:
        """Register this tool on `mcp`, its description and live arguments made from `limits`."""
        description = inspect.cleandoc(self.function.__doc__ or "").format_map(limits.wording)
        mcp.add_tool(self.bound(limits), description=description, annotations=self.annotations)

    def bound(self, limits: ToolLimits) -> Callable[..., Awaitable[Any]]:
        """The function with the live arguments' annotations: a wrapper with its own signature, so servers with
        different settings in one process each get theirs."""
        function = self.function
        signature = inspect.signature(function, eval_str=True)
        parameters = [
            parameter.replace(annotation=self.live[parameter.name](limits))
            if parameter.name in self.live
            else parameter
            for parameter in signature.parameters.values()
        ]

        @functools.wraps(function)
        async def tool(*args: Any, **kwargs: Any) -> Any:
            return await function(*args, **kwargs)

        tool.__signature__ = signature.replace(parameters=parameters)  # type: ignore[attr-defined]
        tool.__annotations__ = {parameter.name: parameter.annotation for parameter in parameters}
        tool.__annotations__["return"] = signature.return_annotation
        return tool
