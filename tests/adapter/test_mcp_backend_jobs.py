"""The MCP-backed deepagents backend keeps blocking semantics when the server detaches a long command."""

from __future__ import annotations

from langchain_kubernetes_agent_sandbox.adapter import McpSandboxBackend, mcp_connect
from langchain_kubernetes_agent_sandbox.testing.server_process import serve_http
from tests.adapter.server_process import ADAPTER_SETTINGS


def test_a_command_the_server_detaches_still_blocks_until_it_ends() -> None:
    with (
        serve_http(*ADAPTER_SETTINGS, "--detach-after=1") as served,
        McpSandboxBackend(mcp_connect.http(served.mcp_url)) as backend,
    ):
        response = backend.execute("echo first; sleep 2.5; echo second; exit 4")
        assert response.output.splitlines()[:2] == ["first", "second"]
        assert response.exit_code == 4
