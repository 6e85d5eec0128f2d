"""Helpers for tests that call the server's tools through a real MCP client."""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from typing import Any

from mcp import ClientSession
from mcp.types import CallToolResult, TextContent

Connect = Callable[..., contextlib.AbstractAsyncContextManager[ClientSession]]


def data(result: CallToolResult) -> dict[str, Any]:
    """A tool result's structured content, which every tool gives."""
    assert result.structuredContent is not None
    return dict(result.structuredContent)


def text_of(result: CallToolResult) -> str:
    return "\n".join(block.text for block in result.content if isinstance(block, TextContent))


async def call(client: ClientSession, tool: str, **arguments: Any) -> CallToolResult:
    """A tool call that must succeed; its text is in the assertion message when it does not."""
    result = await client.call_tool(tool, arguments)
    assert not result.isError, text_of(result)
    return result


async def fail(client: ClientSession, tool: str, **arguments: Any) -> str:
    """A tool call that must fail as an MCP tool error; returns the error text."""
    result = await client.call_tool(tool, arguments)
    assert result.isError, f"{tool} unexpectedly succeeded: {text_of(result)}"
    assert "Traceback" not in text_of(result)
    return text_of(result)
