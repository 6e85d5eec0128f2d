"""Each isolation promise of the local provider, checked by trying to break it from inside."""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
import socket
from collections.abc import Iterator
from pathlib import Path

import pytest

from langchain_kubernetes_agent_sandbox import NotFoundError, PermissionDeniedError, SandboxGoneError
from langchain_kubernetes_agent_sandbox.providers.local import LocalProvider, LocalSandbox, ResourceLimits
from langchain_kubernetes_agent_sandbox.providers.local.state import temporary_state

AS_ROOT = os.geteuid() == 0


@pytest.fixture
async def sandbox(local_state_dir: Path) -> LocalSandbox:
    return await LocalProvider(local_state_dir).create()


@contextlib.contextmanager
def host_listener() -> Iterator[int]:
    """A TCP server on the host's loopback, which no sandbox without network may reach."""
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(8)
    try:
        yield server.getsockname()[1]
    finally:
        server.close()


async def test_host_files_outside_the_workspace_are_invisible(sandbox: LocalSandbox) -> None:
    with temporary_state("kas-host-secret-") as folder:
        secret = folder / "secret.txt"
        secret.write_text("host secret")
        secret.chmod(0o644)
        result = await sandbox.run(f"cat {secret}; ls /root /home /etc/shadow /work; cat /etc/passwd")
    assert "host secret" not in result.stdout
    for path in (secret, "/root", "/home", "/etc/shadow", "/work"):
        assert re.search(rf"{re.escape(str(path))}'?: No such file or directory", result.stderr)
    assert "root:x:0:0" in result.stdout
    assert "sandbox:x:" in result.stdout
    assert len(result.stdout.splitlines()) == 2, "only the sandbox's own passwd entries are visible"


async def test_everything_outside_app_and_tmp_is_read_only(sandbox: LocalSandbox) -> None:
    result = await sandbox.run("for f in /usr/evil /etc/evil /evil /opt/evil; do touch $f || echo refused $f; done")
    assert result.stdout.split("\n")[:-1] == [f"refused {f}" for f in ("/usr/evil", "/etc/evil", "/evil", "/opt/evil")]
    assert result.stderr.count("Read-only file system") == 4
    assert not Path("/usr/evil").exists()
    assert not Path("/etc/evil").exists()
    with pytest.raises(PermissionDeniedError):
        await sandbox.write_file("/opt/planted.txt", b"would vanish with the command")


async def test_symlinks_made_inside_cannot_lead_the_file_api_to_host_files(sandbox: LocalSandbox) -> None:
    with temporary_state("kas-host-target-") as folder:
        target = folder / "host.txt"
        target.write_text("host only")
        await sandbox.run(f"ln -s {target} /app/escape; ln -s {folder} /app/escape-dir; ln -s /etc /app/etc")
        with pytest.raises(NotFoundError):
            await sandbox.read_file("/app/escape")
        with pytest.raises((NotFoundError, PermissionDeniedError)):
            await sandbox.write_file("/app/escape-dir/planted.txt", b"planted")
        assert not (folder / "planted.txt").exists()
        assert target.read_text() == "host only"
        with pytest.raises((NotFoundError, PermissionDeniedError)):
            await sandbox.read_file("/app/etc/shadow")


async def test_symlinks_inside_the_sandbox_still_work_for_the_file_api(sandbox: LocalSandbox) -> None:
    await sandbox.write_file("real.txt", b"through the link")
    await sandbox.run("ln -s /app/real.txt /tmp/link.txt")
    assert await sandbox.read_file("/tmp/link.txt") == b"through the link"


async def test_no_network_by_default(sandbox: LocalSandbox) -> None:
    with host_listener() as port:
        probe = f"import socket; socket.create_connection(('127.0.0.1', {port}), timeout=3); print('connected')"
        result = await sandbox.run(f'python3 -c "{probe}"', timeout=20)
    assert "connected" not in result.stdout
    assert "ConnectionRefusedError" in result.stderr or "unreachable" in result.stderr
    interfaces = await sandbox.run("cat /proc/net/dev")
    assert "lo:" in interfaces.stdout
    assert "eth" not in interfaces.stdout


@pytest.mark.parametrize("use_cgroups", [True, False], ids=["cgroup", "rlimits"])
async def test_memory_limit_stops_the_hog(local_state_dir: Path, use_cgroups: bool) -> None:
    provider = LocalProvider(
        local_state_dir, resources=ResourceLimits(memory_bytes=128 * 1024 * 1024), use_cgroups=use_cgroups
    )
    sandbox = await provider.create()
    hog = 'python3 -c \'b = bytearray(512 * 1024 * 1024); b[::4096] = b"x" * (len(b) // 4096); print("survived")\''
    result = await sandbox.run(hog, timeout=60)
    assert "survived" not in result.stdout
    assert result.exit_code != 0
    if "rlimits" in provider.isolation:
        assert "MemoryError" in result.stderr
    else:
        assert result.exit_code == 137
        assert "memory limit of 128 MiB" in result.stderr
    assert (await sandbox.run("echo still usable")).stdout == "still usable\n"
    killed_by_hand = await sandbox.run("kill -9 $$")
    assert killed_by_hand.exit_code == 137
    assert "memory limit" not in killed_by_hand.stderr, "only a kill by the memory limit is reported as one"


async def test_fork_bomb_stops_at_the_process_limit(local_state_dir: Path) -> None:
    provider = LocalProvider(local_state_dir, resources=ResourceLimits(max_processes=32))
    sandbox = await provider.create()
    result = await sandbox.run("for i in $(seq 100); do sleep 5 & done; wait", timeout=20)
    assert "fork" in result.stderr.lower() or "resource temporarily unavailable" in result.stderr.lower()
    assert not result.timed_out
    assert (await sandbox.run("echo recovered")).stdout == "recovered\n"


@pytest.mark.skipif(not AS_ROOT, reason="checks what a server running as root must not hand to sandboxes")
async def test_a_root_server_does_not_make_sandboxed_code_root(sandbox: LocalSandbox) -> None:
    result = await sandbox.run("id -u; grep CapEff /proc/self/status; echo s > f; chmod 000 f; cat f")
    lines = result.stdout.splitlines()
    assert lines[0] == "65534"
    assert lines[1].split()[1] == "0000000000000000"
    assert "Permission denied" in result.stderr
    with pytest.raises(PermissionDeniedError):
        await sandbox.read_file("f")
    result = await sandbox.run("unshare -U -r id 2>&1 || echo refused")
    assert "refused" in result.stdout


async def test_processes_of_other_sandboxes_are_invisible(local_state_dir: Path) -> None:
    provider = LocalProvider(local_state_dir)
    first, second = await provider.create(), await provider.create()
    background = asyncio.create_task(first.run("sleep 5; echo marker-first", timeout=10))
    await asyncio.sleep(0.5)
    seen = await second.run("ps -eo args 2>/dev/null || ls /proc")
    background.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await background
    assert "marker-first" not in seen.stdout
    assert "sleep 5" not in seen.stdout


async def test_host_tmp_is_not_the_sandbox_tmp(sandbox: LocalSandbox) -> None:
    # The sandbox's own agent keeps its files in /tmp/.kas; nothing else of a new sandbox's /tmp exists.
    result = await sandbox.run("ls -A /tmp; echo inside > /tmp/only-inside.txt")
    assert result.stdout.split() == [".kas"]
    assert not Path("/tmp/only-inside.txt").exists()


async def test_deleted_workspace_makes_the_sandbox_gone(sandbox: LocalSandbox, local_state_dir: Path) -> None:
    import shutil

    shutil.rmtree(LocalProvider(local_state_dir).state.mounts(sandbox.id).workspace)
    with pytest.raises(SandboxGoneError, match="deleted"):
        await sandbox.run("true")
    with pytest.raises(SandboxGoneError):
        await sandbox.write_file("x", b"x")
