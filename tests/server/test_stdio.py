"""The command line over stdio: `serve` with no arguments, `python -m`, and what stops it at start."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from mcp import ClientSession, StdioServerParameters
from mcp.client.stdio import stdio_client

from tests.server.mcp_calls import call

BIN = Path(sys.executable).parent


def serve(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(BIN / "kubernetes-agent-sandbox"), "serve", *args],
        capture_output=True,
        text=True,
        timeout=30,
        env={**os.environ, **(env or {})},
        stdin=subprocess.DEVNULL,
        check=False,
    )


async def test_python_dash_m_serves_the_same_tools_and_sessions_survive_a_restart(local_state_dir: Path) -> None:
    params = StdioServerParameters(
        command=sys.executable,
        args=["-m", "langchain_kubernetes_agent_sandbox", "serve", "--state-dir", str(local_state_dir)],
    )
    async with stdio_client(params) as (read, write), ClientSession(read, write) as client:
        await client.initialize()
        session_id = (await call(client, "create_session")).structuredContent["session_id"]  # type: ignore[index]
        await call(client, "upload_file", path="kept.txt", content="across restarts", session_id=session_id)
    async with stdio_client(params) as (read, write), ClientSession(read, write) as client:
        await client.initialize()
        result = await call(client, "download_file", path="kept.txt", session_id=session_id)
        assert result.structuredContent["content"] == "across restarts"  # type: ignore[index]


def test_missing_bubblewrap_stops_the_server_at_start_with_the_remedy(tmp_path: Path) -> None:
    result = serve("--state-dir", str(tmp_path), env={"PATH": str(tmp_path)})
    assert result.returncode == 1
    assert "the local provider is not available" in result.stderr
    assert "apt-get install bubblewrap" in result.stderr
    assert result.stdout == ""


@pytest.mark.parametrize(
    ("args", "env", "expected"),
    [
        (["--transport", "http", "--host", "0.0.0.0"], {}, "refusing to serve HTTP on 0.0.0.0 without authentication"),
        (["--transport", "http"], {}, "--allow-unauthenticated"),
        (["--host", "0.0.0.0", "--allow-unauthenticated"], {}, "only allowed on loopback"),
        (["--allow-unauthenticated", "--allow-network"], {}, "allow_network needs an allow-list: give egress_allow"),
        ([], {"KUBERNETES_AGENT_SANDBOX_PORT": "eighty"}, "setting port ($KUBERNETES_AGENT_SANDBOX_PORT)"),
        ([], {"KUBERNETES_AGENT_SANDBOX_ALLOW_NETWORK": "maybe"}, "setting allow_network"),
        (["--idle-timeout", "-5"], {}, "setting idle_timeout (--idle-timeout)"),
    ],
)
def test_bad_settings_stop_the_server_naming_the_setting(args: list[str], env: dict[str, str], expected: str) -> None:
    result = serve(*args, env=env)
    assert result.returncode == 2
    assert expected in result.stderr


def test_bad_token_files_and_config_files_are_named(tmp_path: Path) -> None:
    tokens = tmp_path / "tokens.txt"
    tokens.write_text("short alice\n")
    result = serve("--transport", "http", "--token-file", str(tokens))
    assert result.returncode == 2
    assert "shorter than 16 characters" in result.stderr
    config = tmp_path / "kas.toml"
    config.write_text("prot = 80\n")
    result = serve("--config", str(config))
    assert result.returncode == 2
    assert "unknown setting 'prot'" in result.stderr


def test_serve_help_documents_every_setting_and_its_environment_variable() -> None:
    from langchain_kubernetes_agent_sandbox.server.config import SETTINGS

    result = subprocess.run(
        [str(BIN / "kubernetes-agent-sandbox"), "serve", "--help"], capture_output=True, text=True, check=True
    )
    flat = " ".join(result.stdout.split())
    for setting in SETTINGS:
        assert f"${setting.env}" in flat.replace("$ ", "$"), setting.name
        if setting.flag:
            assert setting.option in flat, setting.name
