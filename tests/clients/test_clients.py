"""Other MCP clients than the package's own mcp 1.x, each through stdio and streamable HTTP (with a token):
the TypeScript SDK desktop clients and IDEs are built on, its 2026-07-28 successor, and mcp 2.x for Python.

Each runs one user's session (create a session, `execute`, `execute_python`, upload, list and download a file,
download one that is missing, close the session) in its own runtime (`tests/clients/ts/scenario.mjs`,
`tests/clients/mcp2/scenario.py`), with every result checked by the client against its tool's output schema,
and a result retyped on the way in refused by that check. The 2026-07-28 clients probe `server/discover` first
and fall back to the handshake; the server logs no warning for any of it.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from mcp.types import LATEST_PROTOCOL_VERSION

from langchain_kubernetes_agent_sandbox.server.config import ServerConfig
from tests.server.http_serving import http_server

HERE = Path(__file__).parent
TS = HERE / "ts"
MCP2_PYTHON = HERE / "mcp2" / ".venv" / "bin" / "python"
CLIENTS: dict[str, list[str]] = {
    "typescript-sdk": ["node", str(TS / "scenario.mjs")],
    "typescript-client-2": ["node", str(TS / "scenario.mjs")],
    "python-mcp-2": [str(MCP2_PYTHON), str(HERE / "mcp2" / "scenario.py")],
}
TS_PACKAGE = {"typescript-sdk": "sdk", "typescript-client-2": "client"}
NEGOTIATING = ("typescript-client-2", "python-mcp-2")
"""The clients of the 2026-07-28 revision: they probe `server/discover` first and say what they ended on."""
TOKEN = "clients-token-0123456789abcdef"
INPUTS = {
    "command": "echo hello from the client; echo to-stderr >&2; exit 3",
    "code": "import sys\nanswer = 6 * 7\nprint(answer, sys.version_info[0])",
    "upload": "héllo ✓ naïve café 日本語\nline 2\n",
}
CALLED = ("create_session", "execute", "execute_python", "upload_file", "list_files", "download_file")


def installed(client: str) -> list[str]:
    """The client's command line; a client scripts/setup.sh has not installed fails with what to run."""
    needed = TS / "node_modules" if client in TS_PACKAGE else MCP2_PYTHON
    if not needed.exists():
        pytest.fail(f"{client} is not installed ({needed} is missing): run ./scripts/setup.sh")
    return CLIENTS[client]


def strings_in(value: Any) -> Iterator[str]:
    """Every string in a JSON value, however deep: content found whatever field a schema puts it in."""
    if isinstance(value, str):
        yield value
    elif isinstance(value, dict):
        for item in value.values():
            yield from strings_in(item)
    elif isinstance(value, list):
        for item in value:
            yield from strings_in(item)


async def run_client(client: str, spec: dict[str, Any]) -> tuple[dict[str, Any], str]:
    """What the client saw (its JSON report) and its stderr."""
    if client in TS_PACKAGE:
        spec = {**spec, "client": TS_PACKAGE[client]}
    process = await asyncio.create_subprocess_exec(
        *installed(client),
        json.dumps({**spec, **INPUTS}),
        cwd=TS if client in TS_PACKAGE else HERE,
        stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    try:
        stdout, stderr = await asyncio.wait_for(process.communicate(), 120)
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()
    log = stderr.decode(errors="replace")
    assert process.returncode == 0, f"{client} failed:\n{log[-4000:]}"
    return json.loads(stdout.decode().splitlines()[-1]), log


def complaints(log: str) -> list[str]:
    """The server's log lines at WARNING or above (it logs JSON lines when stderr is not a terminal)."""
    found = []
    for line in log.splitlines():
        try:
            record = json.loads(line)
        except ValueError:
            continue
        if isinstance(record, dict) and record.get("level") in ("WARNING", "ERROR", "CRITICAL"):
            found.append(line)
    return found


def assert_session_went_as_a_user_expects(client: str, seen: dict[str, Any]) -> None:
    schemas = seen["output_schemas"]
    assert all(schemas.get(tool) for tool in CALLED), f"a called tool has no output schema to check: {schemas}"
    calls = seen["calls"]
    executed = calls["execute"]["structured"]
    assert executed["stdout"] == "hello from the client\n"
    assert executed["stderr"] == "to-stderr\n"
    assert executed["exit_code"] == 3
    assert "42 3" in calls["execute_python"]["structured"]["stdout"]
    assert any(text.endswith("unicode.txt") for text in strings_in(calls["list_files"]["structured"]))
    assert INPUTS["upload"] in strings_in(calls["download_file"]["structured"])
    session_id = calls["create_session"]["structured"]["session_id"]
    assert session_id not in strings_in(calls["list_sessions"]["structured"])
    assert seen["failed"].get("is_error"), f"a failed call did not come back as a tool error: {seen['failed']}"
    assert any("missing.txt" in text for text in seen["failed"]["text"])
    assert seen["tampered"]["refused"], "the client accepted a result that does not match the tool's output schema"
    assert "structured content" in seen["tampered"]["error"].lower()
    if client in NEGOTIATING:  # fell back to the handshake, at the newest revision mcp 1.x speaks
        assert seen["protocol"] == LATEST_PROTOCOL_VERSION


def servers_left(state_dir: Path) -> list[int]:
    """Server processes still running on `state_dir` (a stdio client must end every server it started)."""
    left = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                argv = (entry / "cmdline").read_bytes().split(b"\0")
            except OSError:
                continue
            if b"serve" in argv and str(state_dir).encode() in argv:
                left.append(int(entry.name))
    return left


@pytest.mark.parametrize("client", list(CLIENTS))
async def test_a_session_through_stdio(client: str, local_state_dir: Path, tmp_path: Path) -> None:
    # Every server the client starts appends its log to one file: the TypeScript 2.x client probes on a
    # separate server process of its own, whose stderr it discards.
    log = tmp_path / "server.log"
    server = ["/bin/sh", "-c", f'exec "$0" "$@" 2>>{log}', sys.executable, "-m", "langchain_kubernetes_agent_sandbox"]
    server += ["serve", "--state-dir", str(local_state_dir)]
    # The package under test, also when it runs from a source tree rather than installed.
    env = {"PYTHONPATH": os.environ["PYTHONPATH"]} if "PYTHONPATH" in os.environ else {}
    seen, _ = await run_client(client, {"transport": "stdio", "server": server, "env": env})
    assert_session_went_as_a_user_expects(client, seen)
    assert "tool call execute by" in log.read_text()
    assert complaints(log.read_text()) == []
    for _ in range(50):
        if not servers_left(local_state_dir):
            break
        await asyncio.sleep(0.1)
    assert servers_left(local_state_dir) == []


@pytest.mark.parametrize("client", list(CLIENTS))
async def test_a_session_through_streamable_http_with_a_token(
    client: str, local_state_dir: Path, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    tokens = tmp_path / "tokens.txt"
    tokens.write_text(f"{TOKEN} alice\n")
    config = ServerConfig.model_validate(
        {"state_dir": local_state_dir, "principal": "alice", "transport": "http", "token_file": tokens}
    )
    with caplog.at_level(logging.WARNING):
        async with http_server(config) as url:
            seen, _ = await run_client(client, {"transport": "http", "url": f"{url}/mcp", "token": TOKEN})
    assert_session_went_as_a_user_expects(client, seen)
    assert [record.getMessage() for record in caplog.records if record.levelno >= logging.WARNING] == []
