"""Per-sandbox cgroups for memory, process and CPU limits, on cgroup v2 or v1 (hybrid hosts have both).

Detection happens once, at provider start: a host is v2 when `/sys/fs/cgroup` holds `cgroup.controllers`,
v1 when it has separate `memory` and `pids` hierarchies. Where neither is writable, there is no cgroup and
the sandbox falls back to rlimits (see `limits.ResourceLimits.ulimit_lines`). The CPU controller is used where
present (v2 `cpu`; v1 `cpu`, with `cpuacct` beside it for accounting): every sandbox gets the same share of the
CPU when sandboxes compete, and a ceiling of `ResourceLimits.cpus` even when the machine is idle, so that busy
loops in one sandbox slow neither the server nor the others beyond that ceiling.
"""

from __future__ import annotations

import contextlib
import os
import signal
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from .limits import ResourceLimits

BASE_NAME = "kubernetes-agent-sandbox"
CPU_PERIOD_US = 100_000
"""The scheduler period of the CPU ceiling: the kernel's default, short enough that a throttled sandbox
resumes within a tenth of a second."""
V1_CONTROLLERS = ("memory", "pids", "cpu", "cpuacct")


@dataclass(frozen=True)
class SandboxCgroup:
    """The cgroup folders of one sandbox: a process joins by writing its pid to each `cgroup.procs`."""

    directories: tuple[Path, ...]

    @property
    def procs_files(self) -> list[Path]:
        return [directory / "cgroup.procs" for directory in self.directories]

    def kill_all(self) -> None:
        """SIGKILL every process still in the sandbox (a background process left behind, say)."""
        for directory in self.directories:
            kill_file = directory / "cgroup.kill"
            if kill_file.exists():
                with contextlib.suppress(OSError):
                    kill_file.write_text("1")
                continue
            with contextlib.suppress(OSError):
                for pid in (directory / "cgroup.procs").read_text().split():
                    with contextlib.suppress(ProcessLookupError):
                        os.kill(int(pid), signal.SIGKILL)

    def remove(self) -> None:
        self.kill_all()
        for directory in self.directories:
            with contextlib.suppress(FileNotFoundError):
                _rmdir_when_empty(directory)

    def oom_kills(self) -> int:
        """How many processes the kernel has killed here for exceeding the memory limit, ever."""
        for directory in self.directories:
            for name in ("memory.events", "memory.oom_control"):
                with contextlib.suppress(OSError, ValueError):
                    for line in (directory / name).read_text().splitlines():
                        key, _, value = line.partition(" ")
                        if key == "oom_kill":
                            return int(value)
        return 0


def _rmdir_when_empty(directory: Path) -> None:
    """Remove a cgroup folder; the kernel refuses until its last process has been reaped, so try briefly."""
    for _ in range(50):
        try:
            directory.rmdir()
            return
        except OSError as error:
            if isinstance(error, FileNotFoundError):
                return
            time.sleep(0.01)


class CgroupManager:
    """Creates and finds the cgroups of sandboxes under one base folder per hierarchy."""

    def __init__(self, version: Literal[1, 2], bases: tuple[Path, ...], *, cpu: bool) -> None:
        self.version = version
        self.cpu = cpu
        """Whether sandboxes get a CPU share and ceiling (the host has a CPU controller we may use)."""
        self._bases = bases

    @classmethod
    def detect(cls, root: Path = Path("/sys/fs/cgroup")) -> CgroupManager | None:
        """The manager for this host, or None when no memory and pids cgroup can be created here."""
        if (root / "cgroup.controllers").exists():
            return cls._detect_v2(root)
        if (root / "memory").is_dir() and (root / "pids").is_dir():
            return cls._detect_v1(root)
        return None

    @classmethod
    def _detect_v2(cls, root: Path) -> CgroupManager | None:
        available = (root / "cgroup.controllers").read_text().split()
        if not {"memory", "pids"} <= set(available):
            return None
        base = root / BASE_NAME
        wanted: tuple[str, ...] = ("memory", "pids", "cpu") if "cpu" in available else ("memory", "pids")
        try:
            base.mkdir(exist_ok=True)
            try:
                for directory in (root, base):
                    _enable(directory, wanted)
            except OSError:
                if "cpu" not in wanted:
                    raise
                # The kernel refuses the cpu controller while a realtime process runs outside the root cgroup.
                wanted = ("memory", "pids")
                for directory in (root, base):
                    _enable(directory, wanted)
        except OSError:
            return None
        return cls(2, (base,), cpu="cpu" in wanted)

    @classmethod
    def _detect_v1(cls, root: Path) -> CgroupManager | None:
        hierarchies = [name for name in V1_CONTROLLERS if (root / name).is_dir()]
        if "cpu" not in hierarchies:
            hierarchies = [name for name in hierarchies if name != "cpuacct"]
        # Co-mounted hierarchies (cpu,cpuacct behind two links) are one folder: join and clean it once.
        bases = tuple(dict.fromkeys((root / name).resolve() / BASE_NAME for name in hierarchies))
        try:
            for base in bases:
                base.mkdir(exist_ok=True)
        except OSError:
            return None
        return cls(1, bases, cpu="cpu" in hierarchies)

    def ensure(self, sandbox_id: str, limits: ResourceLimits) -> SandboxCgroup:
        """The sandbox's cgroup with `limits` applied, created if missing (after a reboot, say)."""
        directories = tuple(base / sandbox_id for base in self._bases)
        for directory in directories:
            directory.mkdir(exist_ok=True)
        quota = max(1000, round(limits.cpus * CPU_PERIOD_US))
        if self.version == 2:
            (directory,) = directories
            _write(directory / "memory.max", limits.memory_bytes)
            _write_if_present(directory / "memory.swap.max", 0)
            _write(directory / "pids.max", limits.max_processes)
            if self.cpu:
                _write(directory / "cpu.weight", 100)
                _write(directory / "cpu.max", f"{quota} {CPU_PERIOD_US}")
        else:
            memory, pids, *cpu = directories
            _write(memory / "memory.limit_in_bytes", limits.memory_bytes)
            _write_if_present(memory / "memory.memsw.limit_in_bytes", limits.memory_bytes)
            _write(pids / "pids.max", limits.max_processes)
            if self.cpu:
                _write(cpu[0] / "cpu.shares", 1024)
                _write(cpu[0] / "cpu.cfs_period_us", CPU_PERIOD_US)
                _write(cpu[0] / "cpu.cfs_quota_us", quota)
        return SandboxCgroup(directories)

    def existing(self, sandbox_id: str) -> SandboxCgroup:
        return SandboxCgroup(tuple(base / sandbox_id for base in self._bases))

    @property
    def description(self) -> str:
        return f"cgroup v{self.version}" + ("" if self.cpu else " (no CPU controller: no CPU limit)")


def _enable(directory: Path, controllers: tuple[str, ...]) -> None:
    """Let `directory`'s children use `controllers` (cgroup v2 enables controllers per level)."""
    enabled = (directory / "cgroup.subtree_control").read_text().split()
    missing = [f"+{name}" for name in controllers if name not in enabled]
    if missing:
        (directory / "cgroup.subtree_control").write_text(" ".join(missing))


def _write(path: Path, value: int | str) -> None:
    path.write_text(str(value))


def _write_if_present(path: Path, value: int) -> None:
    if path.exists():
        with contextlib.suppress(OSError):
            path.write_text(str(value))
