"""One user's session through the mcp 2.x Python client, as tests/clients/test_clients.py drives it.

Runs in the virtualenv scripts/setup.sh makes for it (mcp 2.x cannot share the package's, which needs mcp 1.x).
Usage: python scenario.py '<json>' with the server as {"transport": "stdio", "server": [argv], "env"} or
{"transport": "http", "url", "token"}, and the session's inputs ("command", "code", "upload"). Prints one JSON
object of what it saw, the same shape as the TypeScript scenario's. A failed call or a result that fails its
output schema ends it with a traceback and exit code 1.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import sys
from collections.abc import AsyncIterator
from typing import Any

import httpx2
from mcp import Client
from mcp.client.stdio import StdioServerParameters
from mcp.client.streamable_http import streamable_http_client
from mcp_types import CallToolResult


@contextlib.asynccontextmanager
async def connected(spec: dict[str, Any]) -> AsyncIterator[Client]:
    """A client in its default negotiation ("auto": probe `server/discover`, fall back to `initialize`)."""
    if spec["transport"] == "stdio":
        command, *args = spec["server"]
        params = StdioServerParameters(command=command, args=args, env=spec["env"])
        async with Client(params, mode="auto") as client:
            yield client
        return
    headers = {"Authorization": f"Bearer {spec['token']}"}
    async with (
        httpx2.AsyncClient(headers=headers, timeout=httpx2.Timeout(30, read=120)) as http,
        Client(streamable_http_client(spec["url"], http_client=http), mode="auto") as client,
    ):
        yield client


def wrongly_typed(structured: dict[str, Any]) -> dict[str, Any]:
    """Every value replaced by one of another JSON type: no output schema that types its fields accepts it."""
    return {key: 12345 if isinstance(value, str) else "not-its-type" for key, value in structured.items()}


async def scenario(spec: dict[str, Any]) -> dict[str, Any]:
    async with connected(spec) as client:
        seen: dict[str, Any] = {"protocol": client.session.protocol_version, "output_schemas": {}, "calls": {}}
        for tool in (await client.list_tools()).tools:
            seen["output_schemas"][tool.name] = tool.output_schema is not None

        async def call(name: str, **arguments: Any) -> CallToolResult:
            result = await client.call_tool(name, arguments)  # raises if the result fails its output schema
            if result.is_error:
                raise RuntimeError(f"{name} failed: {result.content}")
            text = [getattr(block, "text", "") for block in result.content]
            seen["calls"][name] = {"structured": result.structured_content, "text": text}
            return result

        created = await call("create_session")
        assert created.structured_content is not None
        session_id = created.structured_content["session_id"]
        executed = await call("execute", session_id=session_id, command=spec["command"])
        await call("execute_python", session_id=session_id, code=spec["code"])
        await call("upload_file", session_id=session_id, path="notes/unicode.txt", content=spec["upload"])
        await call("list_files", session_id=session_id, path="notes")
        await call("download_file", session_id=session_id, path="notes/unicode.txt")

        # A call that fails must reach the caller as a tool error it can show, not as an exception.
        try:
            failed = await client.call_tool("download_file", {"session_id": session_id, "path": "notes/missing.txt"})
            text = [getattr(block, "text", "") for block in failed.content]
            seen["failed"] = {"threw": False, "is_error": failed.is_error, "text": text}
        except Exception as error:
            seen["failed"] = {"threw": True, "error": str(error)}

        # The check call_tool ran on each result above, given one retyped on the way in: it must refuse it.
        assert executed.structured_content is not None
        tampered = executed.model_copy(update={"structured_content": wrongly_typed(executed.structured_content)})
        try:
            await client.session.validate_tool_result("execute", tampered)
            seen["tampered"] = {"refused": False, "error": None}
        except RuntimeError as error:
            seen["tampered"] = {"refused": True, "error": str(error)}

        await call("close_session", session_id=session_id)
        await call("list_sessions")
    return seen


if __name__ == "__main__":
    print(json.dumps(asyncio.run(scenario(json.loads(sys.argv[1])))))
