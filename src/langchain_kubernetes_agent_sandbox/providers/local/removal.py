"""Removing a folder whose contents a sandboxed program made: however deep, whatever its modes, never a link.

A sandbox can nest folders thousands deep (recursion, and a descriptor per level, both run out), `chmod 000`
them, plant symlinks to host files, and, if one of its processes is still dying, add entries while the removal
runs. So the tree is flattened instead of walked: every folder found below the top is first renamed into the
top folder under a fresh name, and emptied from there, so no more than two folders are ever open and no path
is ever longer than two names. Every step goes through a descriptor opened without following links, and a
folder that fills up again is emptied again, a bounded number of times.
"""

from __future__ import annotations

import contextlib
import errno
import os
import secrets
import stat
from collections import Counter, deque
from collections.abc import Iterator
from pathlib import Path

_OPEN_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC
_REOPEN_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC
"""For /proc/self/fd/N, a link to the very folder already opened: O_NOFOLLOW would refuse it."""
_OWNER_ALL = stat.S_IRWXU

MAX_REFILLS = 20
"""How often one folder may be found refilled after it was emptied before the removal gives up (a process that
survived the kill and keeps writing); the caller keeps its record and tries again later."""


class RemovalIncomplete(OSError):
    """Something kept refilling a folder being removed; what is left is still in place, under the top folder."""


def remove_tree(top: Path, *, last: str | None = None) -> None:
    """Remove `top` and everything in it; a missing `top` is already removed.

    `last`, a file directly in `top`, is removed only once everything else is gone, so that it marks the
    folder as still in use until the removal is complete. Raises OSError (RemovalIncomplete when entries kept
    appearing) with what remains left in place for a later attempt.
    """
    try:
        top_fd = os.open(top, _OPEN_FLAGS)
    except FileNotFoundError:
        return
    try:
        for _ in range(MAX_REFILLS):
            _empty_flattened(top_fd, last)
            if last is not None:
                with contextlib.suppress(FileNotFoundError):
                    os.unlink(last, dir_fd=top_fd)
            try:
                os.rmdir(top)
                return
            except FileNotFoundError:
                return
            except OSError as error:
                if error.errno != errno.ENOTEMPTY:
                    raise
        raise RemovalIncomplete(errno.ENOTEMPTY, f"entries kept appearing in {top} while it was removed")
    finally:
        os.close(top_fd)


def _empty_flattened(top_fd: int, last: str | None) -> None:
    """Empty the folder `top_fd`, moving each folder met below it up into it first."""
    pending: deque[str] = deque()
    refills: Counter[str] = Counter()
    for name, is_folder in _entries(top_fd):
        if is_folder:
            pending.append(name)
        elif name != last:
            _unlink(top_fd, name)
    while pending:
        name = pending.popleft()
        with _opened(top_fd, name) as folder_fd:
            if folder_fd is None:
                continue  # gone already, or no folder any more: `_opened` removed what stands there
            for child, is_folder in _entries(folder_fd):
                if is_folder:
                    moved = _move_up(folder_fd, child, top_fd)
                    if moved is not None:
                        pending.append(moved)
                else:
                    _unlink(folder_fd, child)
        try:
            os.rmdir(name, dir_fd=top_fd)
        except FileNotFoundError:
            continue
        except OSError as error:
            if error.errno != errno.ENOTEMPTY:
                raise
            refills[name] += 1
            if refills[name] >= MAX_REFILLS:
                raise RemovalIncomplete(errno.ENOTEMPTY, "entries kept appearing in a folder being removed") from error
            pending.append(name)


def _entries(folder_fd: int) -> Iterator[tuple[str, bool]]:
    """The folder's entries as they are read, each with whether it is a folder itself (a symlink to one is not).

    Streamed rather than collected, so a folder of a million entries costs no memory; what the caller removes
    meanwhile is simply not seen again, and anything missed is found by the next scan."""
    with os.scandir(folder_fd) as scan:
        for entry in scan:
            yield entry.name, entry.is_dir(follow_symlinks=False)


@contextlib.contextmanager
def _opened(parent_fd: int, name: str) -> Iterator[int | None]:
    """A readable descriptor of the folder `name`, its owner given every right first (a server that is not root
    needs them on a folder the sandbox made `chmod 000`); None when it vanished or was swapped for a non-folder,
    which is then removed as such."""
    try:
        handle = os.open(name, os.O_PATH | os.O_NOFOLLOW | os.O_CLOEXEC, dir_fd=parent_fd)
    except FileNotFoundError:
        yield None
        return
    try:
        info = os.fstat(handle)
        if not stat.S_ISDIR(info.st_mode):
            _unlink(parent_fd, name)
            yield None
            return
        _grant_owner(handle, info)
        # Reopened through the handle, so the folder read is the one checked, whatever happened to `name`.
        folder_fd = os.open(f"/proc/self/fd/{handle}", _REOPEN_FLAGS)
    finally:
        os.close(handle)
    try:
        yield folder_fd
    finally:
        os.close(folder_fd)


def _move_up(parent_fd: int, name: str, top_fd: int) -> str | None:
    """Rename the folder `name` into the top folder under a fresh name, which is returned (None if it vanished)."""
    fresh = f".kas-removing-{secrets.token_hex(8)}"
    try:
        try:
            os.rename(name, fresh, src_dir_fd=parent_fd, dst_dir_fd=top_fd)
        except PermissionError:
            # Moving a folder rewrites its "..", which needs write permission on the folder itself.
            handle = os.open(name, os.O_PATH | os.O_NOFOLLOW | os.O_CLOEXEC, dir_fd=parent_fd)
            try:
                _grant_owner(handle, os.fstat(handle))
            finally:
                os.close(handle)
            os.rename(name, fresh, src_dir_fd=parent_fd, dst_dir_fd=top_fd)
    except FileNotFoundError:
        return None
    return fresh


def _grant_owner(handle: int, info: os.stat_result) -> None:
    if os.geteuid() != 0 and stat.S_ISDIR(info.st_mode) and info.st_mode & _OWNER_ALL != _OWNER_ALL:
        os.chmod(f"/proc/self/fd/{handle}", stat.S_IMODE(info.st_mode) | _OWNER_ALL)


def _unlink(folder_fd: int, name: str) -> None:
    try:
        os.unlink(name, dir_fd=folder_fd)
    except FileNotFoundError:
        pass
    except IsADirectoryError:
        pass  # swapped for a folder since it was listed: the folder's next scan finds it
