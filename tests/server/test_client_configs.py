"""The client configurations in docs/mcp-clients.md, run as written: a desktop client's stdio command and
langchain-mcp-adapters over stdio and HTTP."""

from __future__ import annotations

import json
import os
import re
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from langchain_mcp_adapters.client import MultiServerMCPClient
from mcp import ClientSession, StdioServerParameters
from mcp.client.stdio import stdio_client

from langchain_kubernetes_agent_sandbox.server.config import ServerConfig
from tests.server.http_serving import http_server
from tests.server.mcp_calls import call

DOC = Path(__file__).parents[2] / "docs" / "mcp-clients.md"
BIN = str(Path(sys.executable).parent)


def blocks(language: str) -> list[str]:
    return re.findall(rf"```{language}\n(.*?)```", DOC.read_text(), re.DOTALL)


def connections_in(block: str) -> dict[str, Any]:
    """The dict the documented Python block passes to MultiServerMCPClient, without connecting."""
    captured: dict[str, Any] = {}
    code = block.replace("tools = await client.get_tools()", "")
    namespace = {"__name__": "doc"}
    exec(code.replace("MultiServerMCPClient(", "captured.update("), {**namespace, "captured": captured})
    return captured


def server_environment(state_dir: Path) -> dict[str, str]:
    """What a desktop app's environment would add: the command on PATH, and a state folder for the test."""
    return {"PATH": f"{BIN}:{os.environ['PATH']}", "KUBERNETES_AGENT_SANDBOX_STATE_DIR": str(state_dir)}


async def test_the_desktop_configuration_starts_a_working_stdio_server(local_state_dir: Path) -> None:
    (desktop,) = blocks("json")
    entry = json.loads(desktop)["mcpServers"]["sandbox"]
    params = StdioServerParameters(
        command=entry["command"], args=entry["args"], env=server_environment(local_state_dir)
    )
    async with stdio_client(params) as (read, write), ClientSession(read, write) as client:
        initialized = await client.initialize()
        assert initialized.serverInfo.name == "kubernetes-agent-sandbox"
        assert "/app" in (initialized.instructions or "")
        await call(client, "upload_file", path="in.csv", content="x\n1\n2\n")
        result = await call(
            client, "execute_python", code="print(sum(int(v) for v in open('in.csv').read().split()[1:]))"
        )
        assert result.structuredContent["stdout"] == "3\n"  # type: ignore[index]


async def test_langchain_over_stdio_keeps_files_between_calls(local_state_dir: Path) -> None:
    stdio_block = next(block for block in blocks("python") if '"stdio"' in block and "callbacks" not in block)
    connections = connections_in(stdio_block)
    connections["sandbox"]["env"] = server_environment(local_state_dir)
    tools = {tool.name: tool for tool in await MultiServerMCPClient(connections).get_tools()}
    assert {"execute_python", "execute", "upload_file", "download_file"} <= set(tools)
    await tools["upload_file"].ainvoke({"path": "note.txt", "content": "from one call"})
    content = await tools["execute"].ainvoke({"command": "cat note.txt"})
    assert "from one call" in content[0]["text"]


async def test_langchain_over_http_with_a_bearer_token(
    make_config: Callable[..., ServerConfig], tmp_path: Path
) -> None:
    http_block = next(block for block in blocks("python") if "streamable_http" in block)
    token = "documented-token-0123456789"
    (tmp_path / "tokens.txt").write_text(f"{token} dana\n")
    async with http_server(make_config(transport="http", token_file=tmp_path / "tokens.txt")) as url:
        connections = connections_in(http_block.replace("http://127.0.0.1:8000", url).replace("YOUR_TOKEN", token))
        tools = {tool.name: tool for tool in await MultiServerMCPClient(connections).get_tools()}
        message = await tools["execute"].ainvoke(
            {"name": "execute", "args": {"command": "echo $((6 * 7))"}, "id": "1", "type": "tool_call"}
        )
        assert message.content[0]["text"].startswith("42\n")
        assert message.artifact["structured_content"]["exit_code"] == 0
        failed = await tools["execute"].ainvoke(
            {"name": "execute", "args": {"command": "true", "session_id": "nope"}, "id": "2", "type": "tool_call"}
        )
        assert failed.status == "error"
        assert "not_found" in failed.content[0]["text"]


async def test_langchain_sees_a_commands_output_while_it_runs(local_state_dir: Path) -> None:
    progress_block = next(block for block in blocks("python") if "on_progress" in block)
    environment = server_environment(local_state_dir)
    namespace: dict[str, Any] = {}
    exec(progress_block.replace('"args": ["serve"]}', f'"args": ["serve"], "env": {environment!r}}}'), namespace)
    tools = {tool.name: tool for tool in await namespace["client"].get_tools()}
    started = time.monotonic()
    content = await tools["execute"].ainvoke({"command": "echo early; sleep 2; echo late"})
    assert "early" in content[0]["text"]
    assert any("early" in message for message in namespace["seen"])
    assert time.monotonic() - started >= 2
