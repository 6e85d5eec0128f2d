"""File operations expressed as POSIX shell commands, for paths a provider cannot reach directly.

Every provider can run `/bin/sh -c`; these scripts need only a shell and coreutils (or busybox), so a file
anywhere in the sandbox can be read, written and listed the same way on any runtime. A script reports why it
failed through a distinct exit code, which `raise_for_status` turns into the shared error taxonomy.
"""

from __future__ import annotations

import base64
import shlex

from .errors import (
    InvalidPathError,
    IsDirectoryError,
    NotFoundError,
    PermissionDeniedError,
    SandboxError,
)
from .results import CommandResult, FileEntry

_NOT_FOUND, _IS_DIRECTORY, _PERMISSION_DENIED, _NOT_A_DIRECTORY = 71, 72, 73, 74

CHUNK_BYTES = 48 * 1024
"""Raw bytes per chunk when content travels inside a command line (64 KiB of base64, well under ARG_MAX)."""


def _quoted(path: str) -> str:
    return shlex.quote(path)


def readable_file_checks(path: str) -> str:
    """Exit with a distinct code unless `path` is a readable regular file; append the read to run after it."""
    p = _quoted(path)
    return (
        f'p={p}; [ -e "$p" ] || exit {_NOT_FOUND}; [ -d "$p" ] && exit {_IS_DIRECTORY}; '
        f'[ -r "$p" ] || exit {_PERMISSION_DENIED}'
    )


def read_chunk(path: str, offset: int, size: int) -> str:
    """Print `size` bytes of `path` from `offset`, base64-encoded on one line."""
    return f"tail -c +{offset + 1} -- {_quoted(path)} | head -c {size} | base64 | tr -d '\\n'"


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


def list_dir(path: str) -> str:
    """One line per entry: type, size, mtime and name, separated by '/' (which no name contains)."""
    p = _quoted(path)
    return (
        f'p={p}; [ -e "$p" ] || exit {_NOT_FOUND}; [ -d "$p" ] || exit {_NOT_A_DIRECTORY}; '
        f'[ -r "$p" ] && [ -x "$p" ] || exit {_PERMISSION_DENIED}; cd -- "$p" || exit {_PERMISSION_DENIED}; '
        'for f in * .*; do case "$f" in .|..) continue;; esac; [ -e "$f" ] || [ -L "$f" ] || continue; '
        'if [ -L "$f" ]; then t=symlink; elif [ -d "$f" ]; then t=directory; elif [ -f "$f" ]; then t=file; '
        'else t=other; fi; printf \'%s/%s/%s\\n\' "$t" "$(stat -c \'%s/%Y\' -- "$f")" "$f"; done'
    )


def parse_listing(directory: str, stdout: str) -> list[FileEntry]:
    entries = []
    for line in stdout.splitlines():
        kind, size, mtime, name = line.split("/", 3)
        entries.append(
            FileEntry(
                name=name,
                path=f"{directory.rstrip('/')}/{name}",
                kind=kind,  # type: ignore[arg-type]
                size=int(size),
                modified_at=float(mtime),
            )
        )
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
    detail = (result.stderr or result.stdout).strip()[:500]
    raise SandboxError(f"Could not {action} {path}: exit code {code}: {detail or 'no message'}.")
