"""Processes a command detaches outlive it (jobs and the Python kernel rely on this); nothing outlives the sandbox."""

from __future__ import annotations

import asyncio
import dataclasses
import json
import shutil
from pathlib import Path

import pytest

from langchain_kubernetes_agent_sandbox.providers.local import LocalProvider, LocalSandbox
from langchain_kubernetes_agent_sandbox.providers.local.holder import Holder


async def test_a_detached_process_outlives_the_command_that_started_it(local_state_dir: Path) -> None:
    sandbox = await LocalProvider(local_state_dir).create()
    try:
        await sandbox.run("setsid nohup sh -c 'sleep 1; echo done > /app/later.txt' >/dev/null 2>&1 &")
        await asyncio.sleep(1.8)
        assert (await sandbox.read_file("/app/later.txt")) == b"done\n"
    finally:
        await sandbox.terminate()


async def test_background_processes_of_one_sandbox_are_invisible_to_another(local_state_dir: Path) -> None:
    provider = LocalProvider(local_state_dir)
    first, second = await provider.create(), await provider.create()
    try:
        await first.run("setsid nohup sleep 4321 >/dev/null 2>&1 &")
        seen = await second.run("cat /proc/[0-9]*/cmdline 2>/dev/null | tr '\\0' ' '")
        assert "4321" not in seen.stdout
        mine = await first.run("cat /proc/[0-9]*/cmdline 2>/dev/null | tr '\\0' ' '")
        assert "sleep 4321" in mine.stdout
    finally:
        await first.terminate()
        await second.terminate()


@pytest.mark.parametrize("use_cgroups", [True, False], ids=["cgroup", "rlimits"])
async def test_terminate_ends_every_detached_process(local_state_dir: Path, use_cgroups: bool) -> None:
    sandbox: LocalSandbox = await LocalProvider(local_state_dir, use_cgroups=use_cgroups).create()
    await sandbox.run("setsid nohup sleep 600 >/dev/null 2>&1 &")
    holder = Holder(local_state_dir / "sandboxes" / sandbox.id).current()
    assert holder is not None
    await sandbox.terminate()
    await asyncio.sleep(0.2)
    for pid in (holder.pid, holder.init_pid, holder.outer_pid):
        assert not Path(f"/proc/{pid}").exists() or Path(f"/proc/{pid}/stat").read_text().split()[2] == "Z"


async def test_a_killed_holder_is_replaced_and_commands_still_run(local_state_dir: Path) -> None:
    sandbox = await LocalProvider(local_state_dir).create()
    try:
        await sandbox.run("true")
        holder = Holder(local_state_dir / "sandboxes" / sandbox.id)
        holder.stop()
        result = await sandbox.run("echo again; id -u")
        assert result.stdout.split()[0] == "again"
        assert holder.current() is not None
    finally:
        await sandbox.terminate()


async def test_a_holder_record_whose_pids_went_to_another_sandbox_names_none_of_them(local_state_dir: Path) -> None:
    """Pids are reused within minutes on a busy host: a stale record must never let a kill or a join reach
    another sandbox's holder (all of whose commands would then die with SIGKILL, exit 137)."""
    provider = LocalProvider(local_state_dir)
    mine, other = await provider.create(), await provider.create()
    try:
        await mine.run("true")
        await other.run("setsid nohup sleep 600 >/dev/null 2>&1 &")
        holder, others = (
            Holder(local_state_dir / "sandboxes" / mine.id),
            Holder(local_state_dir / "sandboxes" / other.id),
        )
        real, victim = holder.current(), others.current()
        assert real is not None
        assert victim is not None
        holder.stop()
        stale = dataclasses.replace(real, outer_pid=victim.outer_pid, pid=victim.pid, init_pid=victim.init_pid)
        (local_state_dir / "sandboxes" / mine.id / "holder.json").write_text(json.dumps(dataclasses.asdict(stale)))

        assert holder.current() is None
        with pytest.raises(ProcessLookupError, match="has ended"):
            holder.join(stale)
        holder.stop()
        assert others.current() == victim, "a stale holder record killed another sandbox's holder"
        assert "sleep 600" in (await other.run("cat /proc/[0-9]*/cmdline | tr '\\0' ' '")).stdout
        assert (await mine.run("echo fresh")).stdout == "fresh\n"
    finally:
        await mine.terminate()
        await other.terminate()


async def test_a_holder_whose_folders_were_deleted_ends_by_itself(local_state_dir: Path) -> None:
    sandbox = await LocalProvider(local_state_dir, use_cgroups=False).create()
    await sandbox.run("setsid nohup sleep 600 >/dev/null 2>&1 &")
    record = Holder(local_state_dir / "sandboxes" / sandbox.id).current()
    assert record is not None
    # As `rm -rf` would: every file goes, but a mounted disk image's mount point stays until terminate.
    shutil.rmtree(local_state_dir / "sandboxes" / sandbox.id, ignore_errors=True)
    for _ in range(150):
        if not Path(f"/proc/{record.init_pid}").exists():
            break
        await asyncio.sleep(0.1)
    assert not Path(f"/proc/{record.init_pid}").exists(), "the namespace (and the detached sleep) lives on"
    await sandbox.terminate()
