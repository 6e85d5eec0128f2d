"""The disk and CPU quotas of local sandboxes, checked by the attacks that used to do harm: filling the host's
disk with bytes and files, and starving the machine with busy loops."""

from __future__ import annotations

import asyncio
import logging
import os
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from langchain_kubernetes_agent_sandbox import DiskQuotaExceededError, QuotaExceededError
from langchain_kubernetes_agent_sandbox.providers.local import LocalProvider, LocalSandbox, ResourceLimits, disk
from langchain_kubernetes_agent_sandbox.providers.local.cgroups import BASE_NAME

MIB = 1024 * 1024
SMALL_DISK = ResourceLimits(disk_bytes=32 * MIB, disk_files=2048)
NO_DISK_IMAGES = disk.unavailable_reason()
needs_disk_images = pytest.mark.skipif(
    NO_DISK_IMAGES is not None, reason=f"needs a root server with loop devices and e2fsprogs: {NO_DISK_IMAGES}"
)


def mounts_under(folder: Path) -> list[str]:
    """Mount points below `folder` in this machine's mount table."""
    with open("/proc/self/mountinfo") as table:
        points = [line.split()[4] for line in table]
    return [point for point in points if point.startswith(f"{folder}/")]


def attached_loop_files() -> str:
    """The backing file of every loop device of this machine, one a line."""
    listing = ["losetup", "--list", "--noheadings", "--output", "BACK-FILE"]
    return subprocess.run(listing, capture_output=True, text=True).stdout


@needs_disk_images
async def test_filling_the_disk_stops_at_the_quota_with_a_clear_error(local_state_dir: Path) -> None:
    provider = LocalProvider(local_state_dir, resources=SMALL_DISK)
    sandbox = await provider.create()
    bytes_attack = await sandbox.run(
        "dd if=/dev/zero of=/app/fill bs=1M count=200 2>&1 | head -1; dd if=/dev/zero of=/tmp/fill bs=1M count=200",
        timeout=60,
    )
    assert "No space left on device" in bytes_attack.stdout + bytes_attack.stderr
    assert "the sandbox's disk quota of 32 MiB and 2048 files is full" in bytes_attack.stderr
    image = local_state_dir / "sandboxes" / sandbox.id / disk.IMAGE
    assert image.stat().st_blocks * 512 <= 33 * MIB, "the host spent no more than the quota (and its metadata)"

    with pytest.raises(DiskQuotaExceededError, match=r"disk quota of 32 MiB .* Delete files") as raised:
        await sandbox.write_file("/app/more.bin", b"x" * MIB)
    assert raised.value.code == QuotaExceededError.code == "quota_exceeded"
    assert not await sandbox.exists("/app/more.bin"), "a refused write leaves nothing half-written"

    await sandbox.run("rm /app/fill /tmp/fill")
    files_attack = await sandbox.run(
        "python3 -c \"import os\nn = 0\ntry:\n    while n < 100000:\n        os.mkdir(f'/tmp/d{n}'); n += 1\n"
        'except OSError as error:\n    print(n, error.strerror)"',
        timeout=60,
    )
    made, _, reason = files_attack.stdout.strip().partition(" ")
    assert reason == "No space left on device"
    assert int(made) <= 2048
    with pytest.raises(DiskQuotaExceededError, match="2048 files is full"):
        await sandbox.write_file("/app/one-more.txt", b"x")

    await sandbox.run("rm -r /tmp/d*")
    await sandbox.write_file("/app/after.txt", b"room again")
    assert await sandbox.read_file("/app/after.txt") == b"room again"


@needs_disk_images
async def test_files_survive_a_restart_of_the_server_and_of_the_machine(local_state_dir: Path) -> None:
    sandbox = await LocalProvider(local_state_dir, resources=SMALL_DISK).create()
    await sandbox.write_file("/app/kept.txt", b"kept")
    await sandbox.run("echo also > /tmp/kept.txt")
    restarted = await LocalProvider(local_state_dir).get(sandbox.id)
    assert await restarted.read_file("/app/kept.txt") == b"kept"

    folder = local_state_dir / "sandboxes" / sandbox.id
    restarted._holder.stop()  # a reboot ends every process and unmounts every disk
    disk.detach(folder)
    assert mounts_under(folder) == []
    rebooted = await LocalProvider(local_state_dir).get(sandbox.id)
    assert (await rebooted.run("cat /app/kept.txt /tmp/kept.txt; df -m /app | tail -1")).stdout.startswith("keptalso\n")
    assert len(mounts_under(folder)) == 1


@needs_disk_images
async def test_terminating_or_reaping_a_sandbox_leaves_no_mount_and_no_loop_device(local_state_dir: Path) -> None:
    provider = LocalProvider(local_state_dir, resources=SMALL_DISK)
    busy = await provider.create()
    await busy.run("echo data > /app/held; setsid sh -c 'exec sleep 300 < /app/held' > /dev/null 2>&1 &")
    image = local_state_dir / "sandboxes" / busy.id / disk.IMAGE
    assert str(image) in attached_loop_files()
    expiring = await provider.create(lifetime=0.5)
    assert len(mounts_under(local_state_dir)) == 2

    await busy.terminate()
    await asyncio.sleep(0.6)
    assert await provider.list() == []
    assert mounts_under(local_state_dir) == []
    assert not (local_state_dir / "sandboxes" / busy.id).exists()
    assert not (local_state_dir / "sandboxes" / expiring.id).exists()
    assert str(local_state_dir) not in attached_loop_files()


@pytest.fixture
def no_disk_images() -> Iterator[None]:
    """A host where disk images cannot be mounted (a server not running as root, say). The real check comes back,
    and its cached answer is dropped, in one step at the end: a provider made in between (a fixture's teardown)
    must not cache the pretended answer for every later test."""
    real = disk._why_unavailable
    disk.unavailable_reason.cache_clear()
    disk._why_unavailable = lambda: "only a server running as root can mount a disk image"
    try:
        yield
    finally:
        disk._why_unavailable = real
        disk.unavailable_reason.cache_clear()


async def test_without_disk_images_sandboxes_work_unbounded_after_one_warning(
    local_state_dir: Path, no_disk_images: None, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.WARNING):
        provider = LocalProvider(local_state_dir)
        LocalProvider(local_state_dir)
    warnings = [record.getMessage() for record in caplog.records if "NO disk quota" in record.getMessage()]
    assert warnings == [
        "Local sandboxes get NO disk quota: only a server running as root can mount a disk "
        "image. Their files may fill the host's disk."
    ]
    assert "no disk quota" in provider.isolation
    sandbox = await provider.create()
    await sandbox.write_file("/app/plain.txt", b"plain folder")
    assert (local_state_dir / "sandboxes" / sandbox.id / "app" / "plain.txt").read_bytes() == b"plain folder"
    assert mounts_under(local_state_dir) == []


def test_a_host_that_cannot_mount_says_why(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(os, "geteuid", lambda: 1000)
    assert "root" in (disk._why_unavailable() or "")


def cpu_accounting(sandbox_id: str) -> tuple[float, int]:
    """CPU seconds the sandbox's cgroup has used, and how many periods the kernel throttled it, as the kernel
    counts them (v2 `cpu.stat`; v1 `cpuacct.usage` and the cpu hierarchy's `cpu.stat`)."""
    root = Path("/sys/fs/cgroup")
    if (root / "cgroup.controllers").exists():
        stat = dict(line.split() for line in (root / BASE_NAME / sandbox_id / "cpu.stat").read_text().splitlines())
        return int(stat["usage_usec"]) / 1e6, int(stat["nr_throttled"])
    usage = int(((root / "cpuacct").resolve() / BASE_NAME / sandbox_id / "cpuacct.usage").read_text())
    stat_file = (root / "cpu").resolve() / BASE_NAME / sandbox_id / "cpu.stat"
    stat = dict(line.split() for line in stat_file.read_text().splitlines())
    return usage / 1e9, int(stat["nr_throttled"])


async def timed_true(sandbox: LocalSandbox) -> float:
    started = time.perf_counter()
    await sandbox.run("true")
    return time.perf_counter() - started


async def test_busy_loops_stay_under_the_cpu_ceiling(local_state_dir: Path) -> None:
    provider = LocalProvider(local_state_dir, resources=ResourceLimits(cpus=0.5))
    if "no CPU limit" in provider.isolation or "cgroup" not in provider.isolation:
        pytest.skip(f"needs a writable cgroup CPU controller (v1 cpu and cpuacct, or v2 cpu): {provider.isolation}")
    busy, other = await provider.create(), await provider.create()
    before = min([await timed_true(other) for _ in range(3)])
    await busy.run("for i in 1 2 3 4 5 6 7 8; do setsid sh -c 'while :; do :; done' > /dev/null 2>&1 & done")
    await asyncio.sleep(0.5)
    used_at_start, throttled_at_start = cpu_accounting(busy.id)
    started = time.monotonic()
    during = [await timed_true(other) for _ in range(3)]
    await asyncio.sleep(max(0.0, 4.0 - (time.monotonic() - started)))
    used, throttled = cpu_accounting(busy.id)
    window = time.monotonic() - started
    await busy.terminate()

    spent = used - used_at_start
    timings = f"`true` in another sandbox took {before * 1000:.0f} ms before, {min(during) * 1000:.0f} ms during"
    assert spent <= 0.5 * window + 0.2, f"8 busy loops used {spent:.2f} CPU-s in {window:.2f} s; {timings}"
    assert throttled > throttled_at_start, "the loops were busy enough to meet the ceiling"
