"""The sandbox contract: what every provider gives the layers above.

Public methods validate arguments and resolve paths once, here; providers implement the underscored
operations and receive only normalised absolute paths and checked limits.
"""

from __future__ import annotations

import abc
import asyncio
import builtins
import logging
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from . import paths
from .errors import InvalidArgumentError, SandboxError, TooLargeError
from .limits import ExecutionLimits
from .network.policy import EgressPolicy
from .results import CommandResult, FileEntry, Listing

if TYPE_CHECKING:
    from .engine.channel import AgentChannel
    from .engine.processes import SandboxProcess
    from .ports import PortRoute

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class SandboxInfo:
    """What is known about a sandbox without asking it anything."""

    id: str
    provider: str
    labels: Mapping[str, str] = field(default_factory=dict)
    created_at: float = field(default_factory=time.time)
    expires_at: float | None = None
    network: bool = False
    reachable: tuple[str, ...] = ()
    """Where the sandbox may connect, as the egress rules in force (`name:ports`); empty without egress."""
    suspended: bool = False
    """Stopped with its files kept (see `Sandbox.suspend`); the next use resumes it."""
    suspend_at: float | None = None
    """When idleness suspends it, for a sandbox that can be suspended (its `expires_at` is then its end)."""


def check_command(command: str) -> None:
    """Refuse a command no shell could run, whichever way it reaches the sandbox."""
    if not isinstance(command, str) or not command.strip():
        raise InvalidArgumentError("The command is empty: give a shell command such as 'ls -la'.")
    if "\x00" in command:
        raise InvalidArgumentError("The command contains a NUL byte, which no shell accepts: remove it.")


class Sandbox(abc.ABC):
    """One isolated place to run commands, whose files persist between calls."""

    def __init__(self, info: SandboxInfo, limits: ExecutionLimits) -> None:
        self._info = info
        self.limits = limits

    @property
    def id(self) -> str:
        return self._info.id

    @property
    def info(self) -> SandboxInfo:
        return self._info

    @property
    def keeps_background(self) -> bool | None:
        """Whether processes a command leaves running outlive it (jobs and the Python kernel need that), or None
        when only trying can tell (see `background.py`)."""
        return None

    @property
    def longest_run(self) -> float | None:
        """The longest limit one `run` may have here (something in between ends longer requests), or None."""
        return None

    async def agent(self) -> AgentChannel | None:
        """The channel to this sandbox's agent (see `engine`), or None where only one-shot commands run."""
        return None

    async def port_route(self, port: int) -> PortRoute:
        """How HTTP requests reach TCP port `port` inside this sandbox (see `ports`), for previews."""
        raise SandboxError(
            f"The {self.info.provider} provider cannot reach ports inside its sandboxes, so nothing served there "
            "can be previewed."
        )

    async def run(
        self,
        command: str,
        *,
        timeout: float | None = None,
        cwd: str = paths.WORKDIR,
        env: Mapping[str, str] | None = None,
    ) -> CommandResult:
        """Run `command` through `/bin/sh -c` in `cwd`; past `timeout` seconds it is killed, output kept."""
        check_command(command)
        for name in env or {}:
            if not name or "=" in name or "\x00" in name:
                raise InvalidArgumentError(f"Environment variable name {name!r} is not valid.")
        return await self._run(
            command, timeout=self.limits.timeout_for(timeout), cwd=paths.resolve(cwd), env=dict(env or {})
        )

    async def start(
        self,
        command: str,
        *,
        timeout: float | None = None,
        cwd: str = paths.WORKDIR,
        env: Mapping[str, str] | None = None,
        stdin: bool = False,
    ) -> SandboxProcess:
        """Start `command` as a process and return at once: follow its output as it is written, give it input
        (with stdin=True) and signals, wait for it; past `timeout` seconds it is killed (exit 124, output kept).
        `process(id)` finds it again, also from another server process or after a restart."""
        from .engine import background, processes, shell_jobs  # the engine builds on this contract

        check_command(command)
        limit = self.limits.timeout_for(timeout)
        if await self.agent() is None:
            if stdin:
                raise InvalidArgumentError(processes.NO_INPUT)
            if not await background.keeps_background(self):
                raise InvalidArgumentError(processes.NO_BACKGROUND)
            job = await shell_jobs.start(self, command, timeout=limit, wait=0, cwd=cwd, env=env)
            return processes.ShellProcess(self, job.job_id)

        return await processes.start(
            processes.agent_of(self),
            command,
            timeout=limit,
            cwd=paths.resolve(cwd),
            env=dict(env or {}),
            limit=self.limits.output,
            stdin=stdin,
        )

    async def process(self, process_id: str) -> SandboxProcess:
        """The process `start` gave this id (`NotFoundError` from its first report if there is none)."""
        from .engine import processes, shell_jobs

        shell_jobs.job_dir(process_id)  # refuses an id no process can have
        if await self.agent() is None:
            return processes.ShellProcess(self, process_id)
        return processes.Process(processes.agent_of(self), process_id, self.limits.output)

    async def run_script(
        self, script: str, *, timeout: float, cwd: str = paths.WORKDIR, env: Mapping[str, str] | None = None
    ) -> CommandResult:
        """Run one of the engine's own shell scripts (see `engine.shell_jobs`). Its limit is a run's limit, already
        checked where the run entered, plus a named margin of `engine.budget`, so it is not held to `max_timeout`
        (a job with the longest limit allowed must still get its margin)."""
        if not timeout > 0:
            raise InvalidArgumentError(f"A script's timeout must be positive, got {timeout!r}.")
        return await self._run(script, timeout=float(timeout), cwd=paths.resolve(cwd), env=dict(env or {}))

    async def write_file(self, path: str, data: bytes) -> str:
        """Write `data` to `path`, creating parent directories; returns the absolute path written."""
        if len(data) > self.limits.max_file_bytes:
            raise TooLargeError(
                f"{len(data)} bytes exceed the file size limit of {self.limits.max_file_bytes} bytes: "
                "split the content into several files."
            )
        resolved = paths.resolve(path)
        await self._write_file(resolved, bytes(data))
        return resolved

    async def read_file(self, path: str) -> bytes:
        """Read the whole file at `path`, up to the file size limit."""
        return await self._read_file(paths.resolve(path), self.limits.max_file_bytes)

    async def list_dir(self, path: str = paths.WORKDIR) -> Listing:
        """List the entries of the directory at `path`, sorted by name, at most `limits.max_list_entries`."""
        most = self.limits.max_list_entries
        found = await self._list_dir(paths.resolve(path), most)
        return Listing(sorted(found[:most], key=lambda entry: entry.name), truncated=len(found) > most)

    async def exists(self, path: str) -> bool:
        return await self._exists(paths.resolve(path))

    @abc.abstractmethod
    async def _run(self, command: str, *, timeout: float, cwd: str, env: dict[str, str]) -> CommandResult: ...

    @abc.abstractmethod
    async def _write_file(self, path: str, data: bytes) -> None: ...

    @abc.abstractmethod
    async def _read_file(self, path: str, max_bytes: int) -> bytes: ...

    @abc.abstractmethod
    async def _list_dir(self, path: str, max_entries: int) -> list[FileEntry]:
        """At most `max_entries + 1` entries, in any order: the one past the limit says there are more."""

    @abc.abstractmethod
    async def _exists(self, path: str) -> bool: ...

    @abc.abstractmethod
    async def set_expiry(self, expires_at: float | None) -> None:
        """Move the time after which the sandbox may be reaped (sliding idle timeouts call this on use)."""

    @abc.abstractmethod
    async def terminate(self) -> None:
        """Destroy the sandbox and everything in it; terminating twice is harmless."""

    # Suspension (see `sessions/registry.py`): providers that can stop a sandbox and keep its files override these.

    @property
    def can_suspend(self) -> bool:
        """Whether `suspend` keeps this sandbox's files (else an idle sandbox is terminated)."""
        return False

    async def set_suspend_at(self, moment: float) -> None:
        """Record when idleness suspends the sandbox (sliding idle timeouts call this on use)."""
        raise InvalidArgumentError(f"Sandbox {self.id} cannot be suspended on this provider.")

    async def suspend(self) -> None:
        """Stop every process of the sandbox and keep its files; suspending twice is harmless."""
        raise InvalidArgumentError(f"Sandbox {self.id} cannot be suspended on this provider.")

    async def resume(self, timeout: float) -> None:
        """Start a suspended sandbox again with its files, within `timeout` seconds: its processes, the Python
        kernel among them, start afresh. `NoCapacityError` when there is no room to start it: it stays suspended."""
        raise InvalidArgumentError(f"Sandbox {self.id} cannot be suspended on this provider.")


class SandboxProvider(abc.ABC):
    """Creates sandboxes and finds them again, also after the process that created them restarted."""

    name: str

    @abc.abstractmethod
    async def create(
        self,
        *,
        labels: Mapping[str, str] | None = None,
        lifetime: float | None = None,
        network: bool | EgressPolicy = False,
    ) -> Sandbox:
        """A new sandbox, reaped after `lifetime` seconds unless its expiry is moved.

        `network`: False for none, True for the operator's allow-list, or a policy narrowed from it."""

    @abc.abstractmethod
    async def get(self, sandbox_id: str) -> Sandbox:
        """The sandbox with this id; `NotFoundError` when there is none."""

    @abc.abstractmethod
    async def list(self, labels: Mapping[str, str] | None = None) -> builtins.list[Sandbox]:
        """This provider's sandboxes whose labels include all of `labels`."""

    def can_suspend(self, network: bool | EgressPolicy = False) -> bool:
        """Whether the sandboxes `create(network=network)` makes can be suspended with their files kept."""
        return False

    @abc.abstractmethod
    async def check(self) -> None:
        """Raise `BackendUnavailableError` when the provider cannot serve (for readiness probes)."""

    async def fork(
        self, source: Sandbox, *, labels: Mapping[str, str] | None = None, lifetime: float | None = None, max_bytes: int
    ) -> Sandbox:
        """A new sandbox with the network `source` was given and a copy of its workspace (`/app`), at most
        `max_bytes`; nothing else is copied (no process, no kernel, not `/tmp`). A fork that fails is terminated.

        The copy is streamed between the two sandboxes' agents (see `engine.workspace_copy`); providers that can
        copy faster on their side override `_copy_workspace`."""
        target = await self.create(labels=labels, lifetime=lifetime, network=self._network_of(source))
        try:
            await self._copy_workspace(source, target, max_bytes=max_bytes)
        except BaseException:
            await _terminate_quietly(target)
            raise
        return target

    def _network_of(self, source: Sandbox) -> bool | EgressPolicy:
        """The `network` that `source` was created with, as `create` takes it."""
        return source.info.network

    async def _copy_workspace(self, source: Sandbox, target: Sandbox, *, max_bytes: int) -> None:
        from .engine import workspace_copy  # the engine builds on this contract

        await workspace_copy.copy_workspace(source, target, max_bytes=max_bytes)

    async def aclose(self) -> None:  # noqa: B027 - a provider without connections has nothing to release
        """Release connections and helpers; sandboxes themselves live on."""


async def _terminate_quietly(sandbox: Sandbox) -> None:
    """Terminate a half-made sandbox while an error is on its way up: shielded from the cancellation that may be
    that error, and a failure to terminate is logged rather than hiding the first one."""
    try:
        await asyncio.shield(sandbox.terminate())
    except Exception:
        logger.exception("terminating the unfinished sandbox %s failed", sandbox.id)
