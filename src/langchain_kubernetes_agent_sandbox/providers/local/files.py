"""Direct access to a sandbox's files from the host, without ever following a link the sandbox made.

Reading and writing the workspace from the host is fast, but a sandboxed program controls what lies there:
a symlink `/app/x -> /etc/shadow` must not make the server read the host's file. So paths are walked one
component at a time with O_NOFOLLOW, and anything the walk cannot decide safely (a symlink, a path outside
`/app` and `/tmp`, permission bits that deny the sandbox user) raises `NeedsSandbox`: the caller then does the
operation inside the sandbox, where the kernel resolves links and checks permissions exactly as the sandboxed
program would see them.
"""

from __future__ import annotations

import contextlib
import errno
import itertools
import os
import secrets
import stat
from collections.abc import Iterator
from pathlib import Path

from ...errors import InvalidPathError, IsDirectoryError, NotFoundError, TooLargeError
from ...paths import is_within
from ...results import FileEntry
from .bubblewrap import UserDrop
from .disk import NO_SPACE_ERRNOS, no_space

READ, WRITE, SEARCH = 4, 2, 1
_DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC


class NeedsSandbox(Exception):
    """The host cannot decide this operation safely; perform it inside the sandbox instead."""


def kind_of(mode: int) -> str:
    if stat.S_ISLNK(mode):
        return "symlink"
    if stat.S_ISDIR(mode):
        return "directory"
    if stat.S_ISREG(mode):
        return "file"
    return "other"


class HostFiles:
    """The host side of one sandbox's `/app` and `/tmp`."""

    def __init__(self, mounts: dict[str, Path], owner: UserDrop | None, disk: Path | None = None) -> None:
        """`disk` is where the sandbox's disk image is mounted, to explain a write that finds it full."""
        self._mounts = mounts
        self._owner = owner
        self._disk = disk

    def read(self, path: str, max_bytes: int) -> bytes:
        with self._parent(path, create=False) as (directory, name):
            try:
                fd = os.open(name, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC, dir_fd=directory)
            except FileNotFoundError:
                raise NotFoundError(f"No such file: {path}. Check the path with list_files.") from None
            except OSError as error:
                raise NeedsSandbox from error
            try:
                info = os.fstat(fd)
                if stat.S_ISDIR(info.st_mode):
                    raise IsDirectoryError(f"{path} is a directory: name a file inside it, or list it instead.")
                if not stat.S_ISREG(info.st_mode):
                    raise InvalidPathError(f"{path} is not a regular file (a pipe or device): it cannot be read.")
                self._require(info, READ)
                if info.st_size > max_bytes:
                    raise TooLargeError(
                        f"{path} holds {info.st_size} bytes, more than the limit of {max_bytes}: "
                        "read it in parts with a command such as `head -c`, or compress it first."
                    )
                with os.fdopen(os.dup(fd), "rb") as file:
                    return file.read(max_bytes + 1)[:max_bytes]
            finally:
                os.close(fd)

    def write(self, path: str, data: bytes) -> None:
        """Replace the file in one rename, so that no reader ever sees half of it."""
        try:
            self._write(path, data)
        except OSError as error:
            if error.errno in NO_SPACE_ERRNOS:
                raise no_space(path, self._disk) from None
            raise

    def _write(self, path: str, data: bytes) -> None:
        with self._parent(path, create=True) as (directory, name):
            self._require(os.fstat(directory), WRITE | SEARCH)
            mode = 0o644
            try:
                existing = os.lstat(name, dir_fd=directory)
            except FileNotFoundError:
                pass
            else:
                if stat.S_ISDIR(existing.st_mode):
                    raise IsDirectoryError(f"{path} is a directory: write to a file path inside it.")
                if not stat.S_ISREG(existing.st_mode):
                    raise NeedsSandbox
                self._require(existing, WRITE)
                mode = stat.S_IMODE(existing.st_mode)
            staging = f".kas-{secrets.token_hex(6)}.part"
            fd = os.open(
                staging, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, mode, dir_fd=directory
            )
            try:
                with os.fdopen(fd, "wb") as file:
                    file.write(data)
                    os.fchmod(fd, mode)
                    if self._owner is not None:
                        os.fchown(fd, self._owner.uid, self._owner.gid)
                os.rename(staging, name, src_dir_fd=directory, dst_dir_fd=directory)
            except BaseException:
                with contextlib.suppress(OSError):
                    os.unlink(staging, dir_fd=directory)
                raise

    def list_dir(self, path: str, max_entries: int) -> list[FileEntry]:
        """At most `max_entries + 1` entries: reading stops one past the limit, however large the folder."""
        root, parts = self._locate(path)
        fd = self._walk(root, parts, create=False, path=path)
        try:
            self._require(os.fstat(fd), READ | SEARCH)
            entries = []
            with os.scandir(fd) as scan:
                for entry in itertools.islice(scan, max_entries + 1):
                    info = entry.stat(follow_symlinks=False)
                    entries.append(
                        FileEntry(
                            name=entry.name,
                            path=f"{path.rstrip('/')}/{entry.name}",
                            kind=kind_of(info.st_mode),  # type: ignore[arg-type]
                            size=info.st_size,
                            modified_at=info.st_mtime,
                        )
                    )
            return entries
        finally:
            os.close(fd)

    def exists(self, path: str) -> bool:
        root, parts = self._locate(path)
        if not parts:
            return root.is_dir()
        try:
            with self._parent(path, create=False) as (directory, name):
                os.lstat(name, dir_fd=directory)
                return True
        except (NotFoundError, InvalidPathError, FileNotFoundError):
            return False

    @contextlib.contextmanager
    def _parent(self, path: str, *, create: bool) -> Iterator[tuple[int, str]]:
        root, parts = self._locate(path)
        if not parts:
            raise IsDirectoryError(f"{path} is a directory: name a file inside it.")
        fd = self._walk(root, parts[:-1], create=create, path=path)
        try:
            yield fd, parts[-1]
        finally:
            os.close(fd)

    def _locate(self, path: str) -> tuple[Path, list[str]]:
        for mount, root in self._mounts.items():
            if is_within(path, mount):
                return root, [part for part in path[len(mount) :].split("/") if part]
        raise NeedsSandbox

    def _walk(self, root: Path, parts: list[str], *, create: bool, path: str) -> int:
        """An open descriptor of the directory `root/parts`, refusing to pass through any symlink."""
        try:
            fd = os.open(root, _DIR_FLAGS)
        except FileNotFoundError:
            raise NotFoundError(f"The sandbox folder for {path} is missing.") from None
        try:
            for part in parts:
                self._require(os.fstat(fd), SEARCH)
                try:
                    next_fd = os.open(part, _DIR_FLAGS, dir_fd=fd)
                except FileNotFoundError:
                    if not create:
                        raise NotFoundError(f"No such file or directory: {path}.") from None
                    self._require(os.fstat(fd), WRITE | SEARCH)
                    with contextlib.suppress(FileExistsError):
                        os.mkdir(part, 0o755, dir_fd=fd)
                        if self._owner is not None:
                            os.chown(part, self._owner.uid, self._owner.gid, dir_fd=fd, follow_symlinks=False)
                    next_fd = os.open(part, _DIR_FLAGS, dir_fd=fd)
                except OSError as error:
                    if error.errno == errno.ENOTDIR and not stat.S_ISLNK(os.lstat(part, dir_fd=fd).st_mode):
                        raise InvalidPathError(f"{path}: '{part}' is a file, not a directory.") from None
                    raise NeedsSandbox from error
                os.close(fd)
                fd = next_fd
        except BaseException:
            os.close(fd)
            raise
        return fd

    def _require(self, info: os.stat_result, wanted: int) -> None:
        """Refuse the fast path unless the sandbox user's permission bits grant `wanted`.

        When the server runs as the sandbox user, the kernel already checks; when it runs as root, it would
        bypass the bits that the sandboxed program is bound by, so they are checked here.
        """
        if self._owner is not None and not user_may(info, self._owner, wanted):
            raise NeedsSandbox


def user_may(info: os.stat_result, user: UserDrop, wanted: int) -> bool:
    """Whether `user` (with no supplementary groups) holds the `wanted` rwx bits on a file with `info`."""
    if info.st_uid == user.uid:
        granted = (info.st_mode >> 6) & 7
    elif info.st_gid == user.gid:
        granted = (info.st_mode >> 3) & 7
    else:
        granted = info.st_mode & 7
    return granted & wanted == wanted
