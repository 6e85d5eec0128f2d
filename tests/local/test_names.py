"""Names resolve in every sandbox, with or without egress: an agent that starts a dev server on `localhost` and
calls it by name, or runs a test suite that does, must work offline."""

from __future__ import annotations

from pathlib import Path

import pytest

from langchain_kubernetes_agent_sandbox.providers.local import LocalProvider

SERVE = "setsid nohup python3 -m http.server 8765 --bind localhost >/dev/null 2>&1 </dev/null &"
CALL = (
    "for i in $(seq 50); do curl -sf -o /dev/null http://localhost:8765/ && break; sleep 0.1; done; "
    "curl -sf http://localhost:8765/ | head -c 200"
)
LOOKUPS = (
    "getent hosts localhost && getent hosts sandbox && "
    "python3 -c 'import socket; print([socket.getaddrinfo(\"localhost\", 80, f)[0][4][0] for f in (2, 10)])'"
)


@pytest.mark.parametrize("keep_background", [True, False], ids=["holder", "own-namespaces"])
async def test_localhost_and_the_sandboxs_own_name_resolve_without_network(
    local_state_dir: Path, keep_background: bool
) -> None:
    sandbox = await LocalProvider(local_state_dir, keep_background=keep_background).create()
    try:
        lookups = await sandbox.run(LOOKUPS, timeout=30)
    finally:
        await sandbox.terminate()
    assert lookups.exit_code == 0, lookups.stderr
    lines = lookups.stdout.splitlines()
    assert lines[0].split()[:2] == ["::1", "localhost"]
    assert lines[1].split() == ["127.0.1.1", "sandbox"]
    assert lines[2] == "['127.0.0.1', '::1']"


async def test_a_server_on_localhost_started_by_one_command_answers_the_next_by_name(local_state_dir: Path) -> None:
    sandbox = await LocalProvider(local_state_dir).create()
    try:
        started = await sandbox.run(f"cd /tmp && echo hello > index.html && {SERVE}", timeout=30)
        called = await sandbox.run(CALL, timeout=30)
    finally:
        await sandbox.terminate()
    assert started.exit_code == 0, started.stderr
    assert called.exit_code == 0, called.stderr
    assert called.stdout.strip() == "hello"


async def test_a_server_on_localhost_answers_by_name_in_a_sandbox_without_background_processes(
    local_state_dir: Path,
) -> None:
    sandbox = await LocalProvider(local_state_dir, keep_background=False).create()
    try:
        called = await sandbox.run(f"cd /tmp && echo hello > index.html && {SERVE} {CALL}", timeout=30)
    finally:
        await sandbox.terminate()
    assert called.exit_code == 0, called.stderr
    assert called.stdout.strip() == "hello"


async def test_a_name_no_one_serves_fails_at_once_instead_of_waiting_for_a_resolver(local_state_dir: Path) -> None:
    sandbox = await LocalProvider(local_state_dir).create()
    try:
        lookup = await sandbox.run("getent hosts nothing-here.invalid; echo rc=$?", timeout=30)
    finally:
        await sandbox.terminate()
    assert lookup.stdout.strip() == "rc=2"
    assert lookup.duration < 5
