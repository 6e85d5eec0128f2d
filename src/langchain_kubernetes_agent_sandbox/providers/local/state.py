"""The state folder: where local sandboxes live, so that they outlive the process that made them.

Layout: `<state>/sandboxes/<id>/` holds `sandbox.json` (the record), `app/` (the workspace, `/app` inside)
and `tmp/` (the sandbox's private `/tmp`). `<state>/etc/` holds the passwd and group files sandboxes see,
`<state>/seccomp-<hash>.bpf` the system-call filter every sandboxed command is started under (`seccomp.py`).
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import secrets
import shutil
import stat
from dataclasses import asdict, dataclass, field
from pathlib import Path

from ...errors import BackendUnavailableError, NotFoundError
from .bubblewrap import ETC_ENTRIES, Mounts, UserDrop
from .files import SEARCH, user_may

ID_PATTERN = re.compile(r"^local-[0-9a-f]{24}$")


@dataclass
class SandboxRecord:
    id: str
    created_at: float
    expires_at: float | None
    network: bool
    labels: dict[str, str] = field(default_factory=dict)


def default_state_dir() -> Path:
    if configured := os.environ.get("KUBERNETES_AGENT_SANDBOX_STATE_DIR"):
        return Path(configured)
    if os.geteuid() == 0:
        return Path("/var/lib/kubernetes-agent-sandbox")
    base = os.environ.get("XDG_STATE_HOME") or os.path.expanduser("~/.local/state")
    return Path(base) / "kubernetes-agent-sandbox"


class StateFolder:
    def __init__(self, root: Path, owner: UserDrop | None) -> None:
        self.root = root
        self._owner = owner
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

    def mounts(self, sandbox_id: str) -> Mounts:
        folder = self._sandboxes / sandbox_id
        return Mounts(workspace=folder / "app", tmp=folder / "tmp", etc=self.etc)

    def create(self, record: SandboxRecord) -> None:
        folder = self._sandboxes / record.id
        folder.mkdir(mode=0o711)
        mounts = self.mounts(record.id)
        for path, mode in ((mounts.workspace, 0o755), (mounts.tmp, 0o700)):
            path.mkdir(mode=mode)
            if self._owner is not None:
                os.chown(path, self._owner.uid, self._owner.gid)
        self.save(record)

    def save(self, record: SandboxRecord) -> None:
        folder = self._sandboxes / record.id
        staging = folder / f".sandbox.json.{secrets.token_hex(4)}"
        staging.write_text(json.dumps(asdict(record)))
        staging.replace(folder / "sandbox.json")

    def load(self, sandbox_id: str) -> SandboxRecord:
        if not ID_PATTERN.match(sandbox_id):
            raise NotFoundError(f"No local sandbox has the id {sandbox_id!r}: list sandboxes to see valid ids.")
        try:
            data = json.loads((self._sandboxes / sandbox_id / "sandbox.json").read_text())
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
        """Delete the sandbox's folder, the record first so that a crash half-way leaves no live-looking sandbox."""
        folder = self._sandboxes / sandbox_id
        (folder / "sandbox.json").unlink(missing_ok=True)
        shutil.rmtree(folder, onerror=_make_writable_and_retry)

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


def _unreadable_by_others(folder: str, names: list[str]) -> set[str]:
    skipped = set()
    for name in names:
        info = os.lstat(os.path.join(folder, name))
        if not stat.S_ISLNK(info.st_mode) and not info.st_mode & stat.S_IROTH:
            skipped.add(name)
    return skipped


def _make_writable_and_retry(function: object, path: str, _excinfo: object) -> None:
    """A sandboxed program may `chmod 000` its folders; removal must still succeed when not running as root."""
    parent = os.path.dirname(path)
    os.chmod(parent, stat.S_IRWXU)
    if os.path.isdir(path) and not os.path.islink(path):
        os.chmod(path, stat.S_IRWXU)
        shutil.rmtree(path, onerror=_make_writable_and_retry)
    else:
        os.unlink(path)
