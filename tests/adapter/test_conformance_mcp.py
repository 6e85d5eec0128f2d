"""The standard deepagents sandbox suite on the MCP-backed backend, over streamable HTTP to the real server."""

from __future__ import annotations

import tempfile
from collections.abc import Iterator

import pytest
from sandbox_suite import StandardSandboxSuite
from server_process import serve_http

from langchain_kubernetes_agent_sandbox.adapter import McpSandboxBackend, mcp_connect


class TestMcpBackendConformance(StandardSandboxSuite):
    @pytest.fixture(scope="class")
    def sandbox(self) -> Iterator[McpSandboxBackend]:
        state_dir = tempfile.mkdtemp(prefix="kas-mcp-", dir="/tmp")
        with serve_http(state_dir) as url, McpSandboxBackend(mcp_connect.http(url)) as backend:
            yield backend
