"""Where an imitation pod keeps its files and runs its commands: one sandbox of the local provider.

The pod then behaves like the reference runtime image: files under `/app`, commands without a shell (argv is
run with `exec`, so pipes and `&&` fail exactly as they do on a cluster), isolated by bubblewrap. Only the
public `LocalProvider`/`Sandbox` API is used.
"""

from __future__ import annotations

import posixpath
import shlex
import socket
from dataclasses import dataclass
from typing import Any

from ..errors import IsDirectoryError, NotFoundError, SandboxError
from ..limits import ExecutionLimits
from ..output import OutputLimit
from ..providers.local import LocalProvider, LocalSandbox
from ..sandbox import Sandbox

RUNTIME_MAX_OUTPUT_BYTES = 16 * 1024 * 1024
"""A pod answers with whole outputs, as the reference runtime does; this only keeps a runaway command bounded."""

BASE_DIR = "/app"


@dataclass(frozen=True)
class Executed:
    stdout: str
    stderr: str
    exit_code: int
    timed_out: bool


class PodWorkspace:
    """The base directory `/app` of one pod's sandbox; `rel` paths are relative to it."""

    def __init__(self, sandbox: Sandbox, *, keep_files: bool = False) -> None:
        self.sandbox = sandbox
        self.keep_files = keep_files

    @classmethod
    async def open(
        cls,
        state_dir: str,
        *,
        isolated: bool,
        exec_ceiling: float,
        keep_background: bool = True,
        keep_files: bool = False,
    ) -> PodWorkspace:
        """`keep_files`: the pod's /app lies on a volume that outlives the pod (a PVC): a sandbox already in
        `state_dir` is taken up again with its files (not its processes), and closing only stops it."""
        limits = ExecutionLimits(
            default_timeout=exec_ceiling,
            max_timeout=max(exec_ceiling, 3600.0),
            output=OutputLimit(max_bytes=RUNTIME_MAX_OUTPUT_BYTES),
        )
        provider = LocalProvider(state_dir, limits=limits, unisolated=not isolated, keep_background=keep_background)
        kept = await provider.list() if keep_files else []
        if kept:
            await kept[0].resume(exec_ceiling)
            return cls(kept[0], keep_files=True)
        return cls(await provider.create(network=False), keep_files=keep_files)

    @staticmethod
    def _abs(rel: str) -> str:
        return posixpath.normpath(posixpath.join(BASE_DIR, rel))

    def escapes(self, rel: str) -> bool:
        path = self._abs(rel)
        return not (path == BASE_DIR or path.startswith(BASE_DIR + "/"))

    async def execute(self, argv: list[str], timeout: float) -> Executed:
        result = await self.sandbox.run("exec " + shlex.join(argv), timeout=timeout)
        return Executed(result.stdout, result.stderr, result.exit_code, result.timed_out)

    async def write(self, rel: str, data: bytes) -> None:
        await self.sandbox.write_file(self._abs(rel), data)

    async def read(self, rel: str) -> bytes | None:
        """The file's bytes; None when it is missing or a directory (the reference answers 404 for both)."""
        try:
            return await self.sandbox.read_file(self._abs(rel))
        except (NotFoundError, IsDirectoryError):
            return None

    async def listing(self, rel: str) -> list[dict[str, Any]] | None:
        """Entries as the legacy protocol sends them; None when `rel` is not a directory."""
        try:
            entries = await self.sandbox.list_dir(self._abs(rel))
        except SandboxError:
            return None
        return [
            {
                "name": entry.name,
                "size": entry.size,
                "type": "directory" if entry.kind == "directory" else "file",
                "mod_time": entry.modified_at,
            }
            for entry in entries
        ]

    async def connect_port(self, pod_port: int) -> socket.socket:
        """A connection to `pod_port` inside the pod's sandbox, which has a network of its own."""
        if not isinstance(self.sandbox, LocalSandbox):
            raise SandboxError("this pod's sandbox has no network of its own to connect into")
        return await self.sandbox.connect_port(pod_port)

    async def exists(self, rel: str) -> bool:
        return await self.sandbox.exists(self._abs(rel))

    async def close(self) -> None:
        if self.keep_files:
            await self.sandbox.suspend()
        else:
            await self.sandbox.terminate()
