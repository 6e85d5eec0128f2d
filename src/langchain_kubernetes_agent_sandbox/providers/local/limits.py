"""Resource limits of one local sandbox, and how they are applied from the shell that starts it."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class ResourceLimits:
    """Memory, process and file-size ceilings for everything a sandbox runs at once."""

    memory_bytes: int = 1024 * 1024 * 1024
    max_processes: int = 256
    max_file_bytes: int = 1024 * 1024 * 1024

    def __post_init__(self) -> None:
        if self.memory_bytes < 64 * 1024 * 1024:
            raise ValueError(f"memory_bytes must be at least 64 MiB, got {self.memory_bytes}.")
        if self.max_processes < 8:
            raise ValueError(f"max_processes must be at least 8, got {self.max_processes}.")
        if self.max_file_bytes < 1024 * 1024:
            raise ValueError(f"max_file_bytes must be at least 1 MiB, got {self.max_file_bytes}.")

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
