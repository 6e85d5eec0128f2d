"""Escape attempts the isolation tests in tests/local do not already make: outliving a closed session, and
filling the disk with one file."""

from __future__ import annotations

import os
from pathlib import Path

from mcp.shared.memory import create_connected_server_and_client_session

from langchain_kubernetes_agent_sandbox.providers.local import LocalProvider, ResourceLimits
from langchain_kubernetes_agent_sandbox.server.config import ServerConfig
from langchain_kubernetes_agent_sandbox.server.runtime import running
from tests.reliability.workload import processes_mentioning


async def test_a_detached_process_does_not_outlive_close_session(local_state_dir: Path) -> None:
    marker = f"kas-escape-{os.getpid()}"
    config = ServerConfig(state_dir=str(local_state_dir))
    async with running(config) as server, create_connected_server_and_client_session(server) as client:
        created = await client.call_tool("create_session", {})
        session_id = created.structuredContent["session_id"]  # type: ignore[index]
        started = await client.call_tool(
            "execute",
            {
                # The detached shell says it runs before the command returns; `; :` keeps it from exec'ing sleep,
                # so the marker stays in its command line.
                "command": (
                    f"setsid nohup sh -c 'echo $$ > /tmp/detached; sleep 300; :' {marker} >/dev/null 2>&1 & "
                    "until [ -s /tmp/detached ]; do sleep 0.05; done; echo started"
                ),
                "session_id": session_id,
            },
        )
        assert started.structuredContent["exit_code"] == 0, started.content  # type: ignore[index]
        assert processes_mentioning(marker), "the detached process should be running before the close"
        closed = await client.call_tool("close_session", {"session_id": session_id})
        assert not closed.isError
    assert processes_mentioning(marker) == []


async def test_one_file_cannot_fill_the_disk_past_the_file_size_limit(local_state_dir: Path) -> None:
    limit = 2 * 1024 * 1024
    sandbox = await LocalProvider(local_state_dir, resources=ResourceLimits(max_file_bytes=limit)).create()
    result = await sandbox.run("head -c 20000000 /dev/zero > /app/big; echo rc=$?; wc -c < /app/big")
    assert "File size limit exceeded" in result.stderr
    assert "rc=153" in result.stdout, "SIGXFSZ stops the writer"
    assert int(result.stdout.split()[-1]) <= limit
    assert (await sandbox.run("echo the sandbox still works")).exit_code == 0
    await sandbox.terminate()
