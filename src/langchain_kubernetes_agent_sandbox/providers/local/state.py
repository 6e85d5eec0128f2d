"""The state folder: where local sandboxes live, so that they outlive the process that made them.

Layout: `<state>/sandboxes/<id>/` holds `sandbox.json` (the record), `app/` (the workspace, `/app` inside)
and `tmp/` (the sandbox's private `/tmp`); with a disk quota, `app/` and `tmp/` lie on the sandbox's disk image
`disk.img`, mounted at `disk/` (see `disk.py`). `<state>/etc/` holds the passwd and group files sandboxes see,
`<state>/seccomp-<hash>.bpf` the system-call filter every sandboxed command is started under (`seccomp.py`).
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import re
import secrets
import shutil
import stat
import tempfile
import time
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from ...errors import BackendUnavailableError, NotFoundError, SandboxError
from . import disk
from .bubblewrap import ETC_ENTRIES, NAME_FILES, Mounts, UserDrop
from .files import SEARCH, user_may
from .removal import remove_tree

ID_PATTERN = re.compile(r"^local-[0-9a-f]{24}$")
RECORD = "sandbox.json"


@dataclass
class SandboxRecord:
    id: str
    created_at: float
    expires_at: float | None
    network: bool
    labels: dict[str, str] = field(default_factory=dict)
    egress: dict[str, Any] | None = None
    """The sandbox's `EgressPolicy` (its JSON form), or None for no egress; `network` says whether there is one."""
    suspended: bool = False
    """Its processes were stopped by `suspend`; the next use starts its holder again."""
    suspend_at: float | None = None
    """When idleness suspends it (the session registry slides it)."""


def default_state_dir() -> Path:
    if configured := os.environ.get("KUBERNETES_AGENT_SANDBOX_STATE_DIR"):
        return Path(configured)
    if os.geteuid() == 0:
        return Path("/var/lib/kubernetes-agent-sandbox")
    base = os.environ.get("XDG_STATE_HOME") or os.path.expanduser("~/.local/state")
    return Path(base) / "kubernetes-agent-sandbox"


class StateFolder:
    def __init__(self, root: Path, owner: UserDrop | None, disks: disk.DiskImages | None = None) -> None:
        self.root = root
        self._owner = owner
        self._disks = disks
        self._sandboxes = root / "sandboxes"
        try:
            self._sandboxes.mkdir(parents=True, exist_ok=True)
            root.chmod(0o711)
            self._sandboxes.chmod(0o711)
        except OSError as error:
            raise BackendUnavailableError(
                f"The state folder {root} cannot be created or written ({error.strerror}): "
                "choose another with --state-dir or KUBERNETES_AGENT_SANDBOX_STATE_DIR."
            ) from error
        if owner is not None:
            self._check_reachable(owner)
        self.etc = self._snapshot_etc()

    def new_id(self) -> str:
        return f"local-{secrets.token_hex(12)}"

    def folder(self, sandbox_id: str) -> Path:
        return self._sandboxes / sandbox_id

    def mounts(self, sandbox_id: str) -> Mounts:
        data = disk.data_folder(self.folder(sandbox_id))
        return Mounts(workspace=data / "app", tmp=data / "tmp", etc=self.etc)

    def disk_of(self, sandbox_id: str) -> Path | None:
        """Where the sandbox's disk image is mounted, or None for a sandbox without a disk quota."""
        folder = self.folder(sandbox_id)
        return folder / disk.MOUNT_POINT if disk.has_image(folder) else None

    def create(self, record: SandboxRecord) -> None:
        folder = self.folder(record.id)
        folder.mkdir(mode=0o711)
        try:
            if self._disks is not None:
                self._disks.create(folder)
            mounts = self.mounts(record.id)
            for path, mode in ((mounts.workspace, 0o755), (mounts.tmp, 0o700)):
                path.mkdir(mode=mode)
                if self._owner is not None:
                    os.chown(path, self._owner.uid, self._owner.gid)
            self.save(record)
        except BaseException:
            self.remove(record.id)
            raise

    def attach(self, sandbox_id: str) -> None:
        """Mount the sandbox's disk image if it is not (after a reboot): cheap when it is, a few ms when not."""
        folder = self.folder(sandbox_id)
        if self._disks is not None:
            self._disks.attach(folder)
        elif disk.has_image(folder) and not os.path.ismount(folder / disk.MOUNT_POINT):
            raise BackendUnavailableError(
                f"The sandbox {sandbox_id} keeps its files on a disk image, which this server cannot mount "
                f"({disk.unavailable_reason()}): run the server as root on a host with loop devices."
            )

    def save(self, record: SandboxRecord) -> None:
        folder = self._sandboxes / record.id
        staging = folder / f".sandbox.json.{secrets.token_hex(4)}"
        staging.write_text(json.dumps(asdict(record)))
        staging.replace(folder / RECORD)

    def load(self, sandbox_id: str) -> SandboxRecord:
        if not ID_PATTERN.match(sandbox_id):
            raise NotFoundError(f"No local sandbox has the id {sandbox_id!r}: list sandboxes to see valid ids.")
        try:
            data = json.loads((self._sandboxes / sandbox_id / RECORD).read_text())
        except (FileNotFoundError, NotADirectoryError):
            raise NotFoundError(
                f"No local sandbox has the id {sandbox_id!r}: it never existed or was removed."
            ) from None
        return SandboxRecord(**data)

    def all(self) -> list[SandboxRecord]:
        records = []
        for folder in self._sandboxes.iterdir():
            if ID_PATTERN.match(folder.name):
                try:
                    records.append(self.load(folder.name))
                except (NotFoundError, ValueError):
                    continue
        return records

    def remove(self, sandbox_id: str) -> None:
        """Delete the sandbox's folder, its record last: a removal that fails leaves a record that says the
        sandbox expired, so the next sweep of expired sandboxes tries again and no file is left untracked."""
        folder = self.folder(sandbox_id)
        try:
            record = self.load(sandbox_id)
        except (NotFoundError, ValueError, TypeError):
            record = None
        try:
            if record is not None and (record.expires_at is None or record.expires_at > time.time()):
                record.expires_at = time.time()
                self.save(record)
            disk.detach(folder)
            remove_tree(folder, last=RECORD)
        except OSError as error:
            raise SandboxError(
                f"The files of sandbox {sandbox_id} could not all be removed ({error.strerror or error}); they are "
                "kept under its record, which the next sweep of expired sandboxes tries again."
            ) from error

    def _check_reachable(self, owner: UserDrop) -> None:
        """Bubblewrap opens the mounts as the sandbox user, so every parent folder must let that user pass."""
        for folder in (self.root, *self.root.parents):
            if not user_may(folder.stat(), owner, SEARCH):
                raise BackendUnavailableError(
                    f"The sandbox user (uid {owner.uid}) cannot enter {folder}, which holds the state folder "
                    f"{self.root}: choose a state folder whose parents are searchable, such as "
                    "/var/lib/kubernetes-agent-sandbox, or run `chmod o+x` on that folder."
                )

    def _snapshot_etc(self) -> Path:
        """Copy the harmless part of the host's /etc once, so each command mounts one folder, not a dozen.

        The copy is named by a fingerprint of its sources, so a host change makes a new one while running
        sandboxes keep the old; only world-readable entries are copied (never /etc/ssl/private, say).
        """
        uid, gid = (self._owner.uid, self._owner.gid) if self._owner else (os.getuid(), os.getgid())
        identity = {
            "passwd": f"root:x:0:0:root:/root:/bin/sh\nsandbox:x:{uid}:{gid}:sandbox:/tmp:/bin/sh\n",
            "group": f"root:x:0:\nsandbox:x:{gid}:\n",
            **NAME_FILES,
        }
        sources = [Path("/etc", name) for name in ETC_ENTRIES if os.path.lexists(f"/etc/{name}")]
        fingerprint = hashlib.sha256(repr(sorted(identity.items())).encode())
        for source in sources:
            info = source.lstat()
            fingerprint.update(f"{source}:{info.st_mtime_ns}:{info.st_size}".encode())
        target = self.root / f"etc-{fingerprint.hexdigest()[:16]}"
        if target.is_dir():
            return target
        staging = self.root / f".etc-{secrets.token_hex(6)}"
        staging.mkdir(mode=0o755)
        for source in sources:
            if source.is_symlink():
                (staging / source.name).symlink_to(os.readlink(source))
            elif source.is_dir():
                shutil.copytree(source, staging / source.name, symlinks=True, ignore=_unreadable_by_others)
            elif source.stat().st_mode & stat.S_IROTH:
                shutil.copy2(source, staging / source.name)
        for name, content in identity.items():
            (staging / name).write_text(content)
            (staging / name).chmod(0o644)
        try:
            staging.rename(target)
        except OSError:
            shutil.rmtree(staging)
        return target


@contextlib.contextmanager
def temporary_state(prefix: str) -> Iterator[Path]:
    """A state folder under /tmp that the sandbox user can enter, discarded with `discard_state` at the end."""
    root = Path(tempfile.mkdtemp(prefix=prefix, dir="/tmp"))
    root.chmod(0o711)
    try:
        yield root
    finally:
        discard_state(root)


def discard_state(root: Path) -> None:
    """Delete a whole state folder whose server is gone without terminating its sandboxes (a killed pod's, in
    the imitation cluster), leaving no disk mounted.

    The files go first, through the mounts, so that each sandbox's holder sees its folders deleted and ends
    everything in it; then the disks are unmounted, and their mount points deleted.
    """
    shutil.rmtree(root, ignore_errors=True)
    if (root / "sandboxes").is_dir():
        for folder in (root / "sandboxes").iterdir():
            disk.detach(folder)
        shutil.rmtree(root, ignore_errors=True)


def _unreadable_by_others(folder: str, names: list[str]) -> set[str]:
    skipped = set()
    for name in names:
        info = os.lstat(os.path.join(folder, name))
        if not stat.S_ISLNK(info.st_mode) and not info.st_mode & stat.S_IROTH:
            skipped.add(name)
    return skipped
