"""Attacks on the removal of a sandbox's files and on the reaper: a tree too deep for recursion, folders the
sandbox locked, links out of the sandbox, a writer still running at terminate, a removal that fails, and a
sweep that fails; none of them may leave files untracked or stop later sessions from expiring."""

from __future__ import annotations

import array
import asyncio
import contextlib
import fcntl
import logging
import os
import subprocess
import threading
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from langchain_kubernetes_agent_sandbox import SandboxError
from langchain_kubernetes_agent_sandbox.providers.local import LocalProvider, disk
from langchain_kubernetes_agent_sandbox.providers.local.provider import LocalSandbox
from langchain_kubernetes_agent_sandbox.providers.local.removal import RemovalIncomplete, remove_tree
from langchain_kubernetes_agent_sandbox.sessions import SessionPolicy, SessionRegistry

DEPTH = 1100
"""Deeper than Python's recursion limit, which is what broke `shutil.rmtree`."""


def sandbox_folders(state_dir: Path) -> list[Path]:
    return [folder for folder in (state_dir / "sandboxes").iterdir() if folder.name.startswith("local-")]


@pytest.fixture
async def provider(local_state_dir: Path) -> AsyncIterator[LocalProvider]:
    made = LocalProvider(local_state_dir)
    yield made
    for sandbox in await made.list():
        await sandbox.terminate()


async def test_a_tree_deeper_than_recursion_goes_with_its_sandbox(
    provider: LocalProvider, local_state_dir: Path
) -> None:
    victim = local_state_dir / "host-file"
    victim.write_text("the host's")
    sandbox = await provider.create()
    result = await sandbox.run(
        f"i=0; while [ $i -lt {DEPTH} ]; do mkdir d && cd d || exit 1; i=$((i+1)); done; "
        f"head -c 1048576 /dev/zero > deep.bin; ln -s {victim} link; ln -s / root; ln -s {victim.parent} up; "
        "cd /app && chmod 000 d && echo built",
        timeout=60,
    )
    assert result.stdout == "built\n", result.stderr
    started = time.monotonic()
    await sandbox.terminate()
    assert time.monotonic() - started < 30
    assert sandbox_folders(local_state_dir) == []
    assert victim.read_text() == "the host's", "removal must delete links, never what they point at"


async def test_a_writer_still_running_at_terminate_leaves_nothing(
    provider: LocalProvider, local_state_dir: Path
) -> None:
    sandbox = await provider.create()
    await sandbox.run(
        "setsid sh -c 'n=0; while :; do n=$((n+1)); mkdir -p /app/w/$((n % 50)); : > /app/w/$((n % 50))/f$n; "
        "done' >/dev/null 2>&1 & sleep 0.5; echo started"
    )
    await sandbox.terminate()
    assert sandbox_folders(local_state_dir) == []


FS_IOC_GETFLAGS, FS_IOC_SETFLAGS, FS_IMMUTABLE_FL = 0x80086601, 0x40086602, 0x10


@contextlib.contextmanager
def undeletable(path: Path) -> Iterator[None]:
    """A file nothing can delete, root included (`chattr +i`): a stand-in for any removal that fails half-way.

    Set and cleared through one descriptor, which follows the file wherever the removal moves it."""
    fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW)
    flags = array.array("i", [0])
    fcntl.ioctl(fd, FS_IOC_GETFLAGS, flags)
    try:
        fcntl.ioctl(fd, FS_IOC_SETFLAGS, array.array("i", [flags[0] | FS_IMMUTABLE_FL]))
        yield
    finally:
        fcntl.ioctl(fd, FS_IOC_SETFLAGS, flags)
        os.close(fd)


async def test_a_failed_removal_keeps_the_record_and_a_later_sweep_finishes_it(
    provider: LocalProvider, local_state_dir: Path, caplog: pytest.LogCaptureFixture
) -> None:
    sandbox = await provider.create(lifetime=3600)
    await sandbox.run("mkdir -p /app/a/b && head -c 65536 /dev/zero > /app/a/b/stuck && echo x > /app/other")
    (folder,) = sandbox_folders(local_state_dir)
    # With a disk quota the sandbox's files are one image on the host, which is what removal must get rid of.
    stuck = folder / disk.IMAGE if disk.has_image(folder) else folder / "app" / "a" / "b" / "stuck"
    with undeletable(stuck):
        with pytest.raises(SandboxError, match=r"could not all be removed.*tries again"):
            await sandbox.terminate()
        assert (folder / "sandbox.json").exists(), "the record stays while files remain"
        assert not (disk.data_folder(folder) / "app" / "other").exists()
        with caplog.at_level(logging.ERROR):
            assert await provider.list() == [], "the failed sandbox is marked expired, not listed as live"
        assert "removing the expired sandbox" in caplog.text
    await provider.list()
    assert sandbox_folders(local_state_dir) == []


def test_a_folder_refilled_while_it_is_removed_is_emptied_again_or_kept_whole(local_state_dir: Path) -> None:
    top = local_state_dir / "top"
    (top / "busy").mkdir(parents=True)
    stop = threading.Event()

    def write() -> None:
        n = 0
        while not stop.is_set():
            n += 1
            with contextlib.suppress(OSError):
                (top / "busy" / f"f{n}").write_bytes(b"x")

    writer = threading.Thread(target=write)
    writer.start()
    try:
        time.sleep(0.05)
        with contextlib.suppress(RemovalIncomplete, FileNotFoundError):
            remove_tree(top, last="record")
    finally:
        stop.set()
        writer.join(5)
    remove_tree(top, last="record")
    assert not top.exists()


def test_a_server_that_is_not_root_removes_folders_the_sandbox_locked(local_state_dir: Path) -> None:
    top = local_state_dir / "locked"
    script = (
        "import os, sys; from pathlib import Path; "
        "from langchain_kubernetes_agent_sandbox.providers.local.removal import remove_tree; "
        "top = Path(sys.argv[1]); (top / 'a' / 'b').mkdir(parents=True); (top / 'a' / 'b' / 'f').write_text('x'); "
        "os.chmod(top / 'a' / 'b', 0); os.chmod(top / 'a', 0); remove_tree(top); print(top.exists())"
    )
    import langchain_kubernetes_agent_sandbox

    source = Path(langchain_kubernetes_agent_sandbox.__file__).parents[1]
    local_state_dir.chmod(0o777)
    try:
        done = subprocess.run(
            ["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups", "python3", "-c", script, str(top)],
            env={"PYTHONPATH": str(source), "PATH": "/usr/bin:/bin"},
            capture_output=True,
            text=True,
            timeout=30,
            check=False,
        )
    finally:
        local_state_dir.chmod(0o711)
    assert (done.returncode, done.stdout) == (0, "False\n"), done.stderr


Flaky = Callable[..., Awaitable[Any]]


def failing_once(function: Flaky, error: Exception) -> Flaky:
    armed = [True]

    async def call(*args: Any, **kwargs: Any) -> Any:
        if armed[0]:
            armed[0] = False
            raise error
        return await function(*args, **kwargs)

    return call


async def test_the_reaper_survives_unexpected_errors_and_keeps_reaping(
    provider: LocalProvider, local_state_dir: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    now = [time.time()]
    registry = SessionRegistry(
        provider, SessionPolicy(idle_timeout=100, reap_interval=0.05, suspend_idle=False), clock=lambda: now[0]
    )
    await registry.create("alice")
    await registry.create("bob")
    monkeypatch.setattr(provider, "list", failing_once(provider.list, RuntimeError("the provider broke")))
    monkeypatch.setattr(LocalSandbox, "terminate", failing_once(LocalSandbox.terminate, OSError("disk trouble")))

    async def reaped_within(seconds: float) -> None:
        deadline = time.monotonic() + seconds
        while sandbox_folders(local_state_dir) and time.monotonic() < deadline:  # noqa: ASYNC110 - files, not a flag
            await asyncio.sleep(0.05)
        assert sandbox_folders(local_state_dir) == []

    reaper = asyncio.create_task(registry.reap_forever())
    try:
        with caplog.at_level(logging.ERROR):
            now[0] += 150
            await reaped_within(10)
            later = await registry.create("carol")
            now[0] += 150
            await reaped_within(10)
            assert not reaper.done()
    finally:
        reaper.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await reaper
    assert "the provider broke" in caplog.text
    assert "Traceback" in caplog.text
    assert "disk trouble" in caplog.text
    assert later.sandbox.id not in {sandbox.id for sandbox in await provider.list()}
