"""The standard deepagents sandbox suite on the MCP-backed backend, against the real server started with its
default settings, over streamable HTTP and over stdio: no flag is needed for deep agents."""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator

import pytest

from langchain_kubernetes_agent_sandbox.adapter import McpSandboxBackend, mcp_connect
from langchain_kubernetes_agent_sandbox.providers.local.state import temporary_state
from tests.adapter.sandbox_suite import StandardSandboxSuite
from tests.adapter.server_process import ADAPTER_SETTINGS, serve_http


class TestMcpBackendConformance(StandardSandboxSuite):
    @pytest.fixture(scope="class")
    def sandbox(self) -> Iterator[McpSandboxBackend]:
        with serve_http() as url, McpSandboxBackend(mcp_connect.http(url)) as backend:
            yield backend


class TestMcpBackendConformanceStdio(StandardSandboxSuite):
    @pytest.fixture(scope="class")
    def sandbox(self) -> Iterator[McpSandboxBackend]:
        with temporary_state("kas-stdio-") as state:
            command = [*ADAPTER_SETTINGS, f"--state-dir={state}"]
            serve = ["-m", "langchain_kubernetes_agent_sandbox", "serve", *command]
            # the child gets this environment, so it runs the package the tests import (PYTHONPATH)
            connect = mcp_connect.stdio(sys.executable, serve, env=dict(os.environ))
            with McpSandboxBackend(connect) as backend:
                yield backend
