"""Disk quotas of local sandboxes: each sandbox's /app and /tmp live on an ext4 image of its own, which the
server loop-mounts on the host and bubblewrap binds into the sandbox.

Why an image: a quota the sandbox cannot bypass must be enforced by the kernel below the sandbox's files. The
state folder's filesystem rarely has project quotas, a user quota would pool every sandbox (they share one
uid), and a tmpfs loses the files at reboot. An image bounds bytes by its size and files by its inode count,
answers a write past either with ENOSPC inside, costs the host only what is written to it (it is sparse), and
survives restarts of the server and of the machine (`attach` mounts it again on first use). Only root can
mount, and only where loop devices exist: elsewhere sandboxes get plain folders and no quota, with one warning
per process, and `LocalProvider.isolation` says so.
"""

from __future__ import annotations

import errno
import functools
import logging
import os
import shutil
import subprocess
import tempfile
from collections.abc import Sequence
from pathlib import Path

from ...errors import BackendUnavailableError, DiskQuotaExceededError, SandboxError
from .limits import ResourceLimits

logger = logging.getLogger(__name__)

IMAGE = "disk.img"
MOUNT_POINT = "disk"
NO_SPACE_ERRNOS = (errno.ENOSPC, errno.EDQUOT)
NO_SPACE_TEXT = ("No space left on device", "Disk quota exceeded")
"""How ENOSPC and EDQUOT read in a program's stderr (strerror of glibc and musl alike)."""

_TOOLS = ("mkfs.ext4", "mount", "umount", "losetup")
_SYSTEM_PATH = "/usr/sbin:/usr/bin:/sbin:/bin"
# noinit_itable: the image is a fresh sparse file, so its inode tables already read as zeros, and zeroing them
# in the background would only make the host spend the space.
_MOUNT_OPTIONS = "loop,nosuid,nodev,noatime,noinit_itable"
_TIMEOUT = 60.0
_MIB = 1024 * 1024


class DiskImages:
    """Makes, mounts and unmounts sandboxes' disk images, each sized by the provider's `ResourceLimits`."""

    def __init__(self, limits: ResourceLimits, tools: dict[str, str]) -> None:
        self.limits = limits
        self._tools = tools

    @classmethod
    def detect(cls, limits: ResourceLimits) -> DiskImages | None:
        """Disk images where this host can mount them; None (after one warning per process) where it cannot."""
        reason = unavailable_reason()
        if reason is not None:
            return None
        return cls(limits, _find_tools())

    @property
    def description(self) -> str:
        return f"disk quota {self.limits.disk_bytes // _MIB} MiB and {self.limits.inodes} files per sandbox"

    def create(self, folder: Path) -> Path:
        """A new, mounted image for the sandbox in `folder`; returns the folder it is mounted at."""
        image = folder / IMAGE
        with open(image, "xb") as file:
            file.truncate(self.limits.disk_bytes)
        image.chmod(0o600)
        _format(self._tools, image, self.limits.inodes)
        mount_point = folder / MOUNT_POINT
        mount_point.mkdir(mode=0o711)
        self.attach(folder)
        # The image's own root: the sandbox user passes through it to /app and /tmp, and sees nothing else.
        mount_point.chmod(0o711)
        return mount_point

    def attach(self, folder: Path) -> None:
        """Mount the sandbox's image unless it already is (after a reboot, it is not)."""
        mount_point = folder / MOUNT_POINT
        if (folder / IMAGE).exists() and not os.path.ismount(mount_point):
            _run(self._tools, ["mount", "-o", _MOUNT_OPTIONS, str(folder / IMAGE), str(mount_point)])


def has_image(folder: Path) -> bool:
    return (folder / IMAGE).exists()


def data_folder(folder: Path) -> Path:
    """Where the sandbox in `folder` keeps `app/` and `tmp/`: on its image, or (without a quota) beside it."""
    return folder / MOUNT_POINT if has_image(folder) else folder


def detach(folder: Path) -> None:
    """Unmount the sandbox's image and free its loop device, before its folder is deleted.

    A disk still busy (a process of the sandbox not yet reaped) is detached lazily: it leaves the mount table
    at once, and the kernel frees it when its last file closes.
    """
    mount_point = folder / MOUNT_POINT
    if not has_image(folder) and not os.path.ismount(mount_point):
        return
    tools = _find_tools()
    for _ in range(4):  # a mount made twice at the same place (two servers at once) stacks
        if not os.path.ismount(mount_point):
            break
        if _run(tools, ["umount", str(mount_point)], check=False).returncode != 0:
            _run(tools, ["umount", "--lazy", str(mount_point)])
    if has_image(folder):
        # mount reuses a loop device already bound to the same file, and such a device is not freed by umount.
        listed = _run(tools, ["losetup", "--associated", str(folder / IMAGE)], check=False).stdout
        for line in listed.splitlines():
            device = line.partition(":")[0]
            if device.startswith("/dev/loop"):
                _run(tools, ["losetup", "--detach", device], check=False)


def no_space(path: str, mount_point: Path | None) -> SandboxError:
    """The error for a write that found no room: the sandbox's quota, or (without one) the host's disk."""
    if mount_point is None:
        return BackendUnavailableError(
            f"Could not write {path}: the host's disk that holds the sandboxes is full. Delete files in the "
            "sandbox, or ask the operator to free space on the server's state folder."
        )
    return DiskQuotaExceededError(f"Could not write {path}: {usage_line(mount_point)}")


def usage_line(mount_point: Path) -> str:
    """What an agent needs to know about a full disk: the quota, what is used, and what to do."""
    usage = os.statvfs(mount_point)
    quota_mib = (mount_point.parent / IMAGE).stat().st_size // _MIB
    used_mib = (usage.f_blocks - usage.f_bfree) * usage.f_frsize // _MIB
    used_files = usage.f_files - usage.f_ffree
    return (
        f"the sandbox's disk quota of {quota_mib} MiB and {usage.f_files} files is full ({used_mib} MiB and "
        f"{used_files} files in use, /app and /tmp together). Delete files you no longer need "
        "(`du -sh /app/* /tmp/*` shows where the space went) and try again."
    )


@functools.cache
def unavailable_reason() -> str | None:
    """Why this host cannot give sandboxes disk images, or None when it can; checked and warned once."""
    reason = _why_unavailable()
    if reason is not None:
        logger.warning("Local sandboxes get NO disk quota: %s. Their files may fill the host's disk.", reason)
    return reason


def _why_unavailable() -> str | None:
    if os.geteuid() != 0:
        return "only a server running as root can mount a disk image per sandbox"
    if not os.path.exists("/dev/loop-control"):
        return "this host has no loop devices (/dev/loop-control is missing: `modprobe loop`)"
    missing = [name for name in _TOOLS if shutil.which(name, path=_SYSTEM_PATH) is None]
    if missing:
        return f"{', '.join(missing)} not found (Debian/Ubuntu: `apt-get install e2fsprogs mount`)"
    tools = _find_tools()
    with tempfile.TemporaryDirectory(prefix="kas-disk-probe-") as probe:
        folder = Path(probe)
        try:
            DiskImages(ResourceLimits(disk_bytes=16 * _MIB, disk_files=1024), tools).create(folder)
        except (OSError, SandboxError) as error:
            return f"mounting a test image failed ({error})"
        finally:
            detach(folder)
    return None


def _find_tools() -> dict[str, str]:
    return {name: shutil.which(name, path=_SYSTEM_PATH) or name for name in _TOOLS}


def _format(tools: dict[str, str], image: Path, files: int) -> None:
    # -m 0: no blocks reserved for root, who never writes there; lazy_*_init and nodiscard keep the image sparse
    # and the format fast (milliseconds for any size).
    extended = "lazy_itable_init=1,lazy_journal_init=1,nodiscard,root_owner=0:0"
    _run(tools, ["mkfs.ext4", "-q", "-F", "-m", "0", "-N", str(files), "-E", extended, str(image)])


def _run(tools: dict[str, str], argv: Sequence[str], *, check: bool = True) -> subprocess.CompletedProcess[str]:
    program, *arguments = argv
    try:
        completed = subprocess.run(
            [tools[program], *arguments],
            capture_output=True,
            text=True,
            timeout=_TIMEOUT,
            env={"PATH": _SYSTEM_PATH, "LC_ALL": "C"},
        )
    except (OSError, subprocess.TimeoutExpired) as error:
        raise BackendUnavailableError(f"{program} could not run for a sandbox's disk image: {error}.") from error
    if check and completed.returncode != 0:
        raise BackendUnavailableError(
            f"{program} failed for a sandbox's disk image (exit {completed.returncode}): "
            f"{completed.stderr.strip()[:300] or 'no message'}."
        )
    return completed
