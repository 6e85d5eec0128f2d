"""File operations expressed as POSIX shell commands, for paths a provider cannot reach directly.

Every provider can run `/bin/sh -c`; these scripts need only a shell and coreutils (or busybox), so a file
anywhere in the sandbox can be read, written and listed the same way on any runtime. A script reports why it
failed through a distinct exit code, which `raise_for_status` turns into the shared error taxonomy.
"""

from __future__ import annotations

import base64
import shlex
from typing import Literal

from .errors import (
    InvalidPathError,
    IsDirectoryError,
    NotFoundError,
    PermissionDeniedError,
    SandboxError,
    TimedOutError,
    TooLargeError,
)
from .results import CommandResult, FileEntry

_NOT_FOUND, _IS_DIRECTORY, _PERMISSION_DENIED, _NOT_A_DIRECTORY, _NOT_REGULAR, _TOO_LARGE = 71, 72, 73, 74, 75, 76
_READ_TIMED_OUT = 124
"""What `timeout` exits with when it ends the command."""

READ_SECONDS = 30
"""The longest one read inside the sandbox may take. Reading the largest file allowed from any disk takes far less;
what takes longer is a read that blocks: a pipe or device the sandbox swapped in after the checks."""

LIST_RECORD_BYTES = 320
"""The most one listing record can take: a name of 255 bytes, a kind, a size, a fractional mtime and separators."""

CHUNK_BYTES = 48 * 1024
"""Raw bytes per chunk when content travels inside a command line (64 KiB of base64, well under ARG_MAX)."""


def _quoted(path: str) -> str:
    return shlex.quote(path)


def _bounded(command: str) -> str:
    """`command`, ended after `READ_SECONDS` wherever the image has `timeout` (coreutils and busybox do)."""
    return f"if command -v timeout >/dev/null 2>&1; then timeout {READ_SECONDS} {command}; else {command}; fi"


def readable_file_checks(path: str, max_bytes: int) -> str:
    """Exit with a distinct code unless `path` is, after following links, a readable regular file of at most
    `max_bytes` (by its size; files such as those in /proc that claim 0 are bounded by the read itself).

    Only `test` and `stat` look at it, and neither opens it: a pipe is never opened, so it cannot block."""
    p = _quoted(path)
    return (
        f'p={p}; [ -e "$p" ] || exit {_NOT_FOUND}; [ -d "$p" ] && exit {_IS_DIRECTORY}; '
        f'[ -f "$p" ] || exit {_NOT_REGULAR}; [ -r "$p" ] || exit {_PERMISSION_DENIED}; '
        f's=$(stat -L -c %s -- "$p" 2>/dev/null) && [ "$s" -gt {max_bytes} ] && exit {_TOO_LARGE}'
    )


def _head(max_bytes: int) -> str:
    """Read the checked file `$p`, one byte past `max_bytes` at most: enough to tell that it is too large."""
    return _bounded(f'head -c {max_bytes + 1} -- "$p"')


def read_file(path: str, max_bytes: int) -> str:
    """Print the file at `path` raw (one byte more than `max_bytes` says it is too large)."""
    return f"{readable_file_checks(path, max_bytes)}; {_head(max_bytes)}"


def file_size(path: str, max_bytes: int) -> str:
    """Print the size of the file at `path` as read, counting no further than one byte past `max_bytes`."""
    return f"{readable_file_checks(path, max_bytes)}; {{ {_head(max_bytes)}; }} | wc -c"


def read_chunk(path: str, offset: int, size: int) -> str:
    """Print `size` bytes of `path` from `offset`, base64-encoded on one line."""
    p = _quoted(path)
    tail = _bounded(f"tail -c +{offset + 1} -- {p}")
    return f"[ -f {p} ] || exit {_NOT_REGULAR}; {{ {tail}; }} | head -c {size} | base64 | tr -d '\\n'"


def prepare_write(path: str, staging: str) -> str:
    """Create the parents of `path`, check that it can be written, and start an empty staging file beside it."""
    p, s = _quoted(path), _quoted(staging)
    return (
        f'p={p}; d=$(dirname -- "$p"); '
        f'if [ ! -d "$d" ]; then mkdir -p -- "$d" 2>/dev/null || '
        f'{{ [ -e "$d" ] && exit {_NOT_A_DIRECTORY}; exit {_PERMISSION_DENIED}; }}; fi; '
        f'[ -d "$p" ] && exit {_IS_DIRECTORY}; '
        f'{{ [ -e "$p" ] && [ ! -w "$p" ]; }} && exit {_PERMISSION_DENIED}; '
        f"( : > {s} ) 2>/dev/null || exit {_PERMISSION_DENIED}"
    )


def append_chunk(staging: str, chunk: bytes) -> str:
    """Append `chunk` to the staging file, carried as base64 in the command itself."""
    encoded = base64.b64encode(chunk).decode("ascii")
    return f"printf %s {encoded} | base64 -d >> {_quoted(staging)}"


def commit_write(path: str, staging: str) -> str:
    """Move the finished staging file into place in one rename, so no reader sees half a file."""
    return f"mv -f -- {_quoted(staging)} {_quoted(path)}"


def discard(staging: str) -> str:
    return f"rm -f -- {_quoted(staging)}"


def list_dir(path: str, max_entries: int) -> str:
    """One record per entry, each ended by a NUL (the one byte no name holds): kind, size, mtime and name,
    separated by '/' (which no name holds either). At most `max_entries + 1` records: one more says there are more.

    GNU find lists a folder of any size in one process; elsewhere a shell loop does, one `stat` per entry."""
    p = _quoted(path)
    listed = max_entries + 1
    return (
        f'p={p}; [ -e "$p" ] || exit {_NOT_FOUND}; [ -d "$p" ] || exit {_NOT_A_DIRECTORY}; '
        f'[ -r "$p" ] && [ -x "$p" ] || exit {_PERMISSION_DENIED}; cd -- "$p" || exit {_PERMISSION_DENIED}; '
        "if find . -maxdepth 0 -printf '' >/dev/null 2>&1; then "
        f"find . -mindepth 1 -maxdepth 1 -printf '%y/%s/%T@/%P\\0' 2>/dev/null | head -c {listed * LIST_RECORD_BYTES}; "
        'else n=0; for f in * .*; do case "$f" in .|..) continue;; esac; [ -e "$f" ] || [ -L "$f" ] || continue; '
        f'n=$((n+1)); [ "$n" -gt {listed} ] && break; '
        'if [ -L "$f" ]; then t=l; elif [ -d "$f" ]; then t=d; elif [ -f "$f" ]; then t=f; else t=o; fi; '
        'printf \'%s/%s/%s\\0\' "$t" "$(stat -c \'%s/%Y\' -- "$f")" "$f"; done; fi'
    )


_KINDS: dict[str, Literal["file", "directory", "symlink", "other"]] = {"f": "file", "d": "directory", "l": "symlink"}


def parse_listing(directory: str, stdout: str, max_entries: int) -> list[FileEntry]:
    """The entries `list_dir` printed, at most `max_entries + 1`; a record cut by the byte bound is left out.

    The output comes from the sandbox, so anything but well-formed records is refused rather than guessed at."""
    *records, _cut = stdout.split("\0")
    entries = []
    for record in records[: max_entries + 1]:
        try:
            kind, size, mtime, name = record.split("/", 3)
            entry = FileEntry(
                name=name,
                path=f"{directory.rstrip('/')}/{name}",
                kind=_KINDS.get(kind, "other"),
                size=int(size),
                modified_at=float(mtime),
            )
        except ValueError:
            entry = None
        if entry is None or not name or "/" in name or name in (".", ".."):
            raise SandboxError(f"Could not list {directory}: the sandbox gave a malformed entry {record[:80]!r}.")
        entries.append(entry)
    return entries


def exists(path: str) -> str:
    p = _quoted(path)
    return f"[ -e {p} ] || [ -L {p} ]"


def raise_for_status(result: CommandResult, path: str, action: str) -> None:
    """Turn a script's exit code into the error it stands for."""
    code = result.exit_code
    if code == 0:
        return
    if code == _NOT_FOUND:
        raise NotFoundError(f"No such file or directory: {path}. Check the path with list_files.")
    if code == _IS_DIRECTORY:
        raise IsDirectoryError(f"{path} is a directory: {action} needs a file path inside it.")
    if code == _PERMISSION_DENIED:
        raise PermissionDeniedError(f"Permission denied: the sandbox user may not {action} {path}.")
    if code == _NOT_A_DIRECTORY:
        raise InvalidPathError(f"{path} (or one of its parents) is not a directory: {action} needs a directory.")
    if code == _NOT_REGULAR:
        raise InvalidPathError(f"{path} is not a regular file (a device, pipe or socket): it cannot be {action}.")
    if code == _TOO_LARGE:
        raise TooLargeError(f"{path} is larger than the size limit: read it in parts with a command such as `head -c`.")
    if code == _READ_TIMED_OUT:
        raise TimedOutError(
            f"Could not {action} {path}: it took too long (a read inside the sandbox stops after {READ_SECONDS} s; "
            "a pipe or device swapped in for the file blocks)."
        )
    detail = (result.stderr or result.stdout).strip()[:500]
    raise SandboxError(f"Could not {action} {path}: exit code {code}: {detail or 'no message'}.")
