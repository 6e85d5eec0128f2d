"""Resource limits of one local sandbox, and how they are applied from the shell that starts it."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class ResourceLimits:
    """Memory, process, CPU and disk ceilings for everything a sandbox runs at once.

    The defaults fit ordinary agent work: `cpus=1` because builds, tests and scripts mostly use one core, and
    one runaway sandbox then leaves the rest of the machine to the server and the other sandboxes; 4 GiB and
    200,000 files hold a Python environment with a large framework or a big `node_modules` (about 100,000
    files), and a sparse disk image costs the host only what is written to it.
    """

    memory_bytes: int = 1024 * 1024 * 1024
    max_processes: int = 256
    max_file_bytes: int = 1024 * 1024 * 1024
    cpus: float = 1.0
    """CPU time per second of wall-clock time the whole sandbox may use, in CPUs (0.5 is half of one core)."""
    disk_bytes: int = 4 * 1024 * 1024 * 1024
    """Size of the disk that holds the sandbox's /app and /tmp together."""
    disk_files: int = 200_000
    """Files and folders that disk can hold (its inodes, at most one per 4 KiB of `disk_bytes`: see `inodes`)."""

    def __post_init__(self) -> None:
        if self.memory_bytes < 64 * 1024 * 1024:
            raise ValueError(f"memory_bytes must be at least 64 MiB, got {self.memory_bytes}.")
        if self.max_processes < 8:
            raise ValueError(f"max_processes must be at least 8, got {self.max_processes}.")
        if self.max_file_bytes < 1024 * 1024:
            raise ValueError(f"max_file_bytes must be at least 1 MiB, got {self.max_file_bytes}.")
        if not 0.01 <= self.cpus <= 1024:
            raise ValueError(f"cpus must be between 0.01 and 1024, got {self.cpus}.")
        if self.disk_bytes < 16 * 1024 * 1024:
            raise ValueError(f"disk_bytes must be at least 16 MiB, got {self.disk_bytes}.")
        if self.disk_files < 1024:
            raise ValueError(f"disk_files must be at least 1024, got {self.disk_files}.")

    @property
    def inodes(self) -> int:
        """The inodes the disk gets: `disk_files`, or fewer on a disk too small to hold their tables (256 bytes
        each); the filesystem rounds the count to whole block groups."""
        return min(self.disk_files, self.disk_bytes // 4096)

    def ulimit_lines(self, *, per_process_memory: bool, process_count: bool) -> list[str]:
        """Shell `ulimit` commands: the rlimit fallback where no cgroup can hold the sandbox.

        RLIMIT_NPROC counts every process of the user, so it is only meaningful when the sandbox runs as a
        dedicated user; RLIMIT_AS bounds each process rather than the sandbox, so it is the weaker stand-in
        for a cgroup's memory limit.
        """
        lines = ["ulimit -c 0", f"ulimit -f {self.max_file_bytes // 512}"]
        if per_process_memory:
            lines.append(f"ulimit -v {self.memory_bytes // 1024}")
        if process_count:
            lines.append(f"ulimit -p {self.max_processes}")
        return lines
