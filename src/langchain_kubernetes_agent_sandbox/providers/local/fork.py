"""Forks of local sandboxes: the source's workspace copied into the fork's with `cp -a --reflink=auto`.

The copy runs as a command of the fork, under bubblewrap as the sandbox user, and sees the source's workspace
read-only at `SOURCE`: a link in the source resolves inside that view, never to a host file, and every write
lands in the fork's own workspace, held to its disk quota. `cp` clones files copy-on-write where both workspaces
lie on one filesystem that can (btrfs, XFS: sandboxes without disk images), and copies them otherwise (with disk
quotas each sandbox's image is a filesystem of its own). A workspace larger than the fork may copy is refused
before anything is copied, by its size as `du` counts it.
"""

from __future__ import annotations

import shlex

from ...engine.workspace_copy import too_large
from ...errors import DiskQuotaExceededError, SandboxError, TimedOutError
from ...output import OutputLimit
from .disk import NO_SPACE_TEXT
from .limits import ResourceLimits
from .process import Completed

SOURCE = "/.kas-fork-source"
"""Where the fork's copying command sees the source's workspace (read-only)."""
TOO_LARGE_EXIT = 3
COMPLAINTS = OutputLimit(max_bytes=4096, head_share=1.0)
"""What the copying command may say: `cp`'s first complaints."""


def copy_command(source: str, target: str, max_bytes: int) -> list[str]:
    """The shell command that measures `source` and copies its contents into `target` (paths as it sees them)."""
    origin, into = shlex.quote(source), shlex.quote(target)
    script = (
        f"used=$(du -sxk {origin} 2>/dev/null | cut -f1); "
        f'if [ "${{used:-0}}" -gt {max_bytes // 1024} ]; then exit {TOO_LARGE_EXIT}; fi; '
        f"exec cp -a --reflink=auto {origin}/. {into}/"
    )
    return ["/bin/sh", "-c", script]


def raise_for(completed: Completed, *, timeout: float, max_bytes: int, quota: ResourceLimits | None) -> None:
    """The typed error for a copy that did not succeed; `quota` is the fork's disk quota, if it has one."""
    if completed.timed_out:
        raise TimedOutError(f"Copying the workspace into the fork took over {timeout:g} s. Nothing was created.")
    if completed.returncode == 0:
        return
    if completed.returncode == TOO_LARGE_EXIT:
        raise too_large(max_bytes)
    text = completed.stderr.text().strip()
    if quota is not None and any(marker in text for marker in NO_SPACE_TEXT):
        raise DiskQuotaExceededError(
            f"The workspace does not fit in a new session's disk quota of {quota.disk_bytes // (1024 * 1024)} MiB "
            f"and {quota.inodes} files (the server's disk_quota_mib and disk_quota_files): delete files in /app "
            "(`du -sh /app/*` shows where the space went), then fork again. Nothing was created."
        )
    raise SandboxError(
        f"Copying the workspace into the fork failed (cp exit {completed.returncode}): {text[:500] or 'no message'}. "
        "Nothing was created."
    )
