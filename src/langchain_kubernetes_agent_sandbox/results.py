"""What sandbox operations return."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Literal

TIMEOUT_EXIT_CODE = 124
"""The exit code of a command that hit its wall-clock limit, as coreutils `timeout` reports it."""


@dataclass(frozen=True)
class CommandResult:
    """The outcome of one command run; stdout and stderr are kept apart."""

    stdout: str
    stderr: str
    exit_code: int
    duration: float
    timed_out: bool = False
    stdout_bytes: int = 0
    """Bytes the command wrote to stdout, including any that were dropped."""
    stderr_bytes: int = 0
    dropped_bytes: int = 0
    """Bytes left out of `stdout` and `stderr` by the output cap."""

    @property
    def truncated(self) -> bool:
        return self.dropped_bytes > 0

    @property
    def ok(self) -> bool:
        return self.exit_code == 0 and not self.timed_out


class Listing(list["FileEntry"]):
    """A directory's entries, sorted by name; `truncated` when it held more than the listing limit, and which
    of them were read is then arbitrary."""

    def __init__(self, entries: Iterable[FileEntry] = (), *, truncated: bool = False) -> None:
        super().__init__(entries)
        self.truncated = truncated


@dataclass(frozen=True)
class FileEntry:
    """One entry of a directory listing."""

    name: str
    path: str
    kind: Literal["file", "directory", "symlink", "other"]
    size: int
    modified_at: float
    """Seconds since the epoch."""
