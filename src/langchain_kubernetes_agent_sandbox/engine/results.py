"""What the engine reports about jobs and Python cells, whichever way it ran them (agent or shell)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

from ..results import CommandResult

JobState = Literal["running", "exited", "timed_out", "cancelled", "lost"]


@dataclass(frozen=True)
class JobResult:
    """What a job has done so far: its output since a cursor, whether it runs, how it ended."""

    job_id: str
    state: JobState
    result: CommandResult
    """Output since the cursor asked for (bounded by the sandbox's output cap, head and tail kept)."""
    cursor: str
    """Give this to `status` to get only output written after this result."""
    stdout_path: str
    stderr_path: str
    files: dict[str, bytes] = field(default_factory=dict)
    """The job's `REPORTED_FILES` that exist and fit the report, by name."""
    limit: float | None = None
    """The job's own time limit in seconds (None for a job whose folder does not say)."""
    started_at: float | None = None
    """When the job started (Unix time), or None if unknown."""
    python: bool = False
    """Whether the job is a Python cell (reported like execute_python), not a shell command."""
    cell: dict[str, Any] | None = None
    """For a Python cell run by a sandbox's agent: what the kernel said (see `kernel.describe`)."""
    images: list[bytes] = field(default_factory=list)
    """For such a cell: its figures that fit inline, as PNG bytes (never read back by path)."""

    @property
    def running(self) -> bool:
        return self.state == "running"


@dataclass(frozen=True)
class Figure:
    path: str
    """The figure at its own resolution, saved in the sandbox."""
    inline: str | None
    """A copy within the byte budget (the same file when the original fits), or None when none could be made."""
    width: int = 0
    height: int = 0
    error: str | None = None


@dataclass(frozen=True)
class CellResult:
    """A cell's job plus what the kernel said about it."""

    job: JobResult
    kernel: str
    """started, kept, restarted (the previous kernel ended: see kernel_note), reset, or once."""
    kernel_note: str | None
    value: str | None
    error: str | None
    figures: list[Figure] = field(default_factory=list)
    figures_made: int = 0
    state_survived: bool | None = None
    """After an interrupt: whether the namespace was kept (None when the cell was not interrupted)."""
