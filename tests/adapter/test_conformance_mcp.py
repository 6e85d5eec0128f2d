"""The standard deepagents sandbox suite on the MCP-backed backend, over streamable HTTP to the real server."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from langchain_kubernetes_agent_sandbox.adapter import McpSandboxBackend, mcp_connect
from tests.adapter.sandbox_suite import StandardSandboxSuite
from tests.adapter.server_process import serve_http


class TestMcpBackendConformance(StandardSandboxSuite):
    @pytest.fixture(scope="class")
    def sandbox(self) -> Iterator[McpSandboxBackend]:
        with serve_http() as url, McpSandboxBackend(mcp_connect.http(url)) as backend:
            yield backend
