"""The MCP tools as a backend with the provider's shape (write_file, read_file, run), over an in-memory client
on top of the test's provider; a tool error becomes the typed `SandboxError` its code names."""

from __future__ import annotations

import base64
from dataclasses import dataclass
from typing import Any

import pytest
from mcp.shared.memory import create_connected_server_and_client_session

from langchain_kubernetes_agent_sandbox import SandboxError, SandboxProvider, errors
from langchain_kubernetes_agent_sandbox.server.app import SandboxMCP
from langchain_kubernetes_agent_sandbox.server.config import ServerConfig
from langchain_kubernetes_agent_sandbox.server.runtime import build_server, session_policy
from langchain_kubernetes_agent_sandbox.sessions import SessionRegistry
from tests.reliability.workload import TYPED_CODES, text_of

TYPED: dict[str, type[SandboxError]] = {
    error.code: error
    for error in (getattr(errors, name) for name in errors.__all__)
    if error.__module__ == errors.__name__ and error.code != SandboxError.code
}
"""The taxonomy's error class for each code a tool error may carry (the first class of each code)."""


@dataclass
class Ran:
    stdout: str
    stderr: str
    exit_code: int


class McpBackend:
    """Each call opens its own in-memory client (as langchain-mcp-adapters does); the registry, and so the
    default session, lasts as long as the backend."""

    def __init__(self, server: SandboxMCP) -> None:
        self.server = server

    async def _tool(self, name: str, **arguments: Any) -> dict[str, Any]:
        async with create_connected_server_and_client_session(self.server) as client:
            result = await client.call_tool(name, arguments)
        if result.isError:
            failure = (result.meta or {}).get(errors.TOOL_ERROR_META) or {}
            assert failure.get("code") in TYPED_CODES, f"untyped tool error from {name}: {text_of(result)}"
            raise TYPED[failure["code"]](text_of(result))
        assert result.structuredContent is not None
        return result.structuredContent

    async def write_file(self, path: str, data: bytes) -> None:
        content = base64.b64encode(data).decode()
        await self._tool("upload_file", path=path, content=content, encoding="base64")

    async def read_file(self, path: str) -> bytes:
        return base64.b64decode((await self._tool("download_file", path=path, encoding="base64"))["content"])

    async def run(self, command: str) -> Ran:
        result = await self._tool("execute", command=command)
        return Ran(result["stdout"], result["stderr"], result["exit_code"])

    async def execute_python(self, code: str) -> str:
        result = await self._tool("execute_python", code=code)
        assert result["exit_code"] == 0, result["stderr"]
        return str(result["stdout"])


@pytest.fixture
async def mcp(provider: SandboxProvider) -> McpBackend:
    """The server's tools over the test's provider (so once per provider), reached in memory."""
    config = ServerConfig.model_validate({"principal": "hostile", "max_transfer_bytes": 16 * 1024 * 1024})
    registry = SessionRegistry(provider, session_policy(config))
    return McpBackend(build_server(config, registry))
