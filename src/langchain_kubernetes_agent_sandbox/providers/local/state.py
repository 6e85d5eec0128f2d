"""The state folder: where local sandboxes live, so that they outlive the process that made them.

Layout: `<state>/sandboxes/<id>/` holds `sandbox.json` (the record), `app/` (the workspace, `/app` inside)
and `tmp/` (the sandbox's private `/tmp`). `<state>/etc/` holds the passwd and group files sandboxes see.
"""

from __future__ import annotations

import json
import os
import re
import secrets
import shutil
import stat
from dataclasses import asdict, dataclass, field
from pathlib import Path

from ...errors import BackendUnavailableError, NotFoundError
from .bubblewrap import Mounts, UserDrop
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
        self.etc_passwd, self.etc_group = self._write_identity()

    def new_id(self) -> str:
        return f"local-{secrets.token_hex(12)}"

    def mounts(self, sandbox_id: str) -> Mounts:
        folder = self._sandboxes / sandbox_id
        return Mounts(
            workspace=folder / "app", tmp=folder / "tmp", etc_passwd=self.etc_passwd, etc_group=self.etc_group
        )

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

    def _write_identity(self) -> tuple[Path, Path]:
        uid, gid = (self._owner.uid, self._owner.gid) if self._owner else (os.getuid(), os.getgid())
        etc = self.root / "etc"
        etc.mkdir(exist_ok=True)
        etc.chmod(0o755)
        files = (
            (etc / "passwd", f"root:x:0:0:root:/root:/bin/sh\nsandbox:x:{uid}:{gid}:sandbox:/tmp:/bin/sh\n"),
            (etc / "group", f"root:x:0:\nsandbox:x:{gid}:\n"),
        )
        for path, content in files:
            if not path.exists() or path.read_text() != content:
                path.write_text(content)
            path.chmod(0o644)
        return files[0][0], files[1][0]


def _make_writable_and_retry(function: object, path: str, _excinfo: object) -> None:
    """A sandboxed program may `chmod 000` its folders; removal must still succeed when not running as root."""
    parent = os.path.dirname(path)
    os.chmod(parent, stat.S_IRWXU)
    if os.path.isdir(path) and not os.path.islink(path):
        os.chmod(path, stat.S_IRWXU)
        shutil.rmtree(path, onerror=_make_writable_and_retry)
    else:
        os.unlink(path)
