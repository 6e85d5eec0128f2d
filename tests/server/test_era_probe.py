"""Clients of the 2026-07-28 revision probe `server/discover` first; over stdio they get "Method not found" at
once, the server logs nothing about it, and the `initialize` that follows on the same connection works."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

from mcp.types import LATEST_PROTOCOL_VERSION, METHOD_NOT_FOUND

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
