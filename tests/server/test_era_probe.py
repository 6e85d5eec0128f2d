"""Clients of the 2026-07-28 revision probe `server/discover` first. Over stdio they get "Method not found" at
once, the server logs nothing about it, and the `initialize` that follows on the same connection works; over
HTTP they get a 400 without one of that revision's errors, so they fall back there too."""

from __future__ import annotations

import json
import logging
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import pytest
from mcp.types import LATEST_PROTOCOL_VERSION, METHOD_NOT_FOUND

from langchain_kubernetes_agent_sandbox.server.config import ServerConfig
from tests.server.http_serving import http_server

TOKEN = "probe-token-0123456789abcdef"
UNSUPPORTED_PROTOCOL_VERSION = -32022
HEADER_MISMATCH = -32020
"""The 2026-07-28 revision's own errors a probe could get (mcp 1.x does not know them)."""

# What mcp 2.3.0's client sends first on a stdio connection in its default mode ("auto"), byte for byte.
DISCOVER_PROBE = {
    "jsonrpc": "2.0",
    "id": 1,
    "method": "server/discover",
    "params": {
        "_meta": {
            "io.modelcontextprotocol/protocolVersion": "2026-07-28",
            "io.modelcontextprotocol/clientInfo": {"name": "mcp", "version": "0.1.0"},
            "io.modelcontextprotocol/clientCapabilities": {},
        }
    },
}
INITIALIZE = {
    "jsonrpc": "2.0",
    "id": 2,
    "method": "initialize",
    "params": {
        "protocolVersion": LATEST_PROTOCOL_VERSION,
        "capabilities": {},
        "clientInfo": {"name": "t", "version": "1"},
    },
}


def exchange(state_dir: Path, *requests: dict[str, Any]) -> tuple[list[dict[str, Any]], str]:
    """The server's answers to `requests` sent on one stdio connection, and what it wrote to stderr."""
    server = subprocess.run(
        [sys.executable, "-m", "langchain_kubernetes_agent_sandbox", "serve", "--state-dir", str(state_dir)],
        input="".join(json.dumps(request) + "\n" for request in requests),
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert server.returncode == 0, server.stderr
    return [json.loads(line) for line in server.stdout.splitlines()], server.stderr


def test_the_discover_probe_gets_method_not_found_and_initialize_then_works(local_state_dir: Path) -> None:
    answers, log = exchange(local_state_dir, DISCOVER_PROBE, INITIALIZE)
    probe_answer, initialized = answers
    assert probe_answer["id"] == 1
    assert probe_answer["error"]["code"] == METHOD_NOT_FOUND
    assert "initialize" in probe_answer["error"]["message"]
    assert initialized["id"] == 2
    assert initialized["result"]["protocolVersion"] == LATEST_PROTOCOL_VERSION
    assert "WARNING" not in log
    assert "validat" not in log


@pytest.mark.parametrize("stateless", [False, True])
async def test_over_http_the_probe_gets_400_with_a_json_rpc_error_that_is_not_a_modern_one(
    make_config: Callable[..., ServerConfig], tmp_path: Path, caplog: pytest.LogCaptureFixture, stateless: bool
) -> None:
    tokens = tmp_path / "tokens.txt"
    tokens.write_text(f"{TOKEN} alice\n")
    # The headers mcp 2.3.0's client sends with its probe.
    headers = {
        "Authorization": f"Bearer {TOKEN}",
        "Accept": "application/json, text/event-stream",
        "Content-Type": "application/json",
        "MCP-Protocol-Version": "2026-07-28",
        "Mcp-Method": "server/discover",
    }
    config = make_config(transport="http", token_file=tokens, stateless=stateless)
    with caplog.at_level(logging.WARNING):
        async with http_server(config) as url, httpx.AsyncClient() as http:
            answer = await http.post(f"{url}/mcp", json=DISCOVER_PROBE, headers=headers)
    # The 2026-07-28 revision's signal on HTTP for a server that speaks only the handshake: a 400 whose body is
    # no error of its own (those are -32022 for an unsupported version and -32020 for mismatched headers).
    assert answer.status_code == 400
    assert answer.json()["error"]["code"] not in (UNSUPPORTED_PROTOCOL_VERSION, HEADER_MISMATCH)
    assert [record.getMessage() for record in caplog.records if record.levelno >= logging.WARNING] == []
