"""The local provider, the embedded default: each sandbox is a workspace folder, each command runs under
bubblewrap with the sandbox's cgroup (or rlimits) around it."""

from __future__ import annotations

import asyncio
import builtins
import contextlib
import dataclasses
import logging
import os
import posixpath
import secrets
import shlex
import signal
import socket
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from ... import paths, shell_files
from ...engine import processes, program
from ...engine.channel import AgentChannel
from ...engine.links import AgentLinks
from ...engine.workspace_copy import COPY_TIMEOUT
from ...errors import (
    BackendUnavailableError,
    InvalidArgumentError,
    NotFoundError,
    SandboxError,
    SandboxGoneError,
    TooLargeError,
)
from ...limits import ExecutionLimits
from ...network.namespace import listen_inside
from ...network.policy import EgressPolicy
from ...network.proxy import Observer, Resolver, system_resolver
from ...network.service import EgressService
from ...output import OutputLimit
from ...ports import PortRoute, PortUnreachable, Stream, check_port
from ...results import TIMEOUT_EXIT_CODE, CommandResult, FileEntry
from ...sandbox import Sandbox, SandboxInfo, SandboxProvider
from . import egress, fork, seccomp
from .agent_link import agent_connection
from .bubblewrap import (
    SANDBOX_PATH,
    Mounts,
    UserDrop,
    bwrap_argv,
    find_bwrap,
    find_keyctl,
    free_descriptor,
    launcher_argv,
)
from .cgroups import CgroupManager, SandboxCgroup
from .disk import NO_SPACE_TEXT, DiskImages, usage_line
from .disk import detach as detach_disk
from .files import HostFiles, NeedsSandbox
from .holder import HOLDER_COMMAND, Holder, HolderRecord, JoinFds
from .limits import ResourceLimits
from .port_connector import CONNECTOR, PortConnectors
from .process import Completed, run_process
from .state import SandboxRecord, StateFolder, default_state_dir

logger = logging.getLogger(__name__)

HOLDER_EXIT_WAIT = 2.0
"""Seconds a holder that lost its namespaces may take to end before it counts as running still."""
HOLDER_EXIT_POLL = 0.02

NOBODY = UserDrop(65534, 65534)
_FILE_OPERATION_TIMEOUT = 120.0
_LAUNCHER_ENV = {"PATH": "/usr/sbin:/usr/bin:/sbin:/bin"}
"""bwrap's own pid 1 keeps the environment it was started with (readable at /proc/1/environ), so bwrap never
sees the server's environment, which may hold credentials."""

UNISOLATED_WARNING = (
    "The local provider runs UNISOLATED: sandboxed commands run as %s with full access to this machine's "
    "files and network, and /app is only the workspace folder for the file tools. Use this only on a machine "
    "you trust; install bubblewrap to isolate them."
)


class LocalProvider(SandboxProvider):
    """Sandboxes that are folders on this machine, isolated by bubblewrap.

    Sandboxes survive a restart of the process: they are records in `state_dir`, found again by id or labels.
    """

    name = "local"

    def __init__(
        self,
        state_dir: str | os.PathLike[str] | None = None,
        *,
        limits: ExecutionLimits | None = None,
        resources: ResourceLimits | None = None,
        unisolated: bool = False,
        sandbox_user: UserDrop | None = None,
        use_cgroups: bool = True,
        keep_background: bool = True,
        egress: EgressPolicy | None = None,
        egress_resolver: Resolver = system_resolver,
    ) -> None:
        """`keep_background=False` gives each command a pid namespace of its own that ends with it, as runtimes
        that end a request's whole process tree do: nothing a command detaches outlives it.

        `egress` is the operator's allow-list, which `create(network=True)` gives a sandbox; without it no
        sandbox has egress. `egress_resolver` resolves names for the proxy (tests point test names at loopback).
        """
        self.keep_background = keep_background
        self.limits = limits or ExecutionLimits()
        self.resources = resources or ResourceLimits()
        self.unisolated = unisolated
        self._bwrap = None if unisolated else find_bwrap()
        self._keyctl = None if unisolated else find_keyctl()
        if os.geteuid() == 0:
            self._owner: UserDrop | None = sandbox_user or NOBODY
        else:
            self._owner = None
        self._disks = DiskImages.detect(self.resources)
        self.state = StateFolder(Path(state_dir) if state_dir else default_state_dir(), self._owner, self._disks)
        self._seccomp = None if unisolated else seccomp.install(self.state.root)
        self._cgroups = CgroupManager.detect() if use_cgroups else None
        self._agents = AgentLinks()
        self._port_connectors = PortConnectors()
        self.egress = egress
        self._as_root = os.geteuid() == 0
        self._egress = EgressService(resolver=egress_resolver)
        if unisolated:
            logger.warning(UNISOLATED_WARNING, f"uid {os.getuid()}")

    @property
    def isolation(self) -> str:
        """A one-line description of how commands are contained, for `session_info` and logs."""
        how = "none (unisolated)" if self.unisolated else "bubblewrap, seccomp filter"
        limits = self._cgroups.description if self._cgroups else "rlimits (no CPU limit)"
        disk = f"{self._disks.description} (ext4 image)" if self._disks else "no disk quota"
        return f"{how}; limits by {limits}; {disk}; sandbox uid {self._owner.uid if self._owner else os.getuid()}"

    async def create(
        self,
        *,
        labels: Mapping[str, str] | None = None,
        lifetime: float | None = None,
        network: bool | EgressPolicy = False,
    ) -> LocalSandbox:
        policy = egress.policy_for(network, self.egress)
        if policy is not None and not self.unisolated:
            egress.check_supported(as_root=self._as_root, keep_background=self.keep_background)
        await self._reap_expired()
        now = time.time()
        record = SandboxRecord(
            id=self.state.new_id(),
            created_at=now,
            expires_at=now + lifetime if lifetime is not None else None,
            network=policy is not None,
            labels=dict(labels or {}),
            egress=None if policy is None else policy.to_json(),
        )
        await asyncio.to_thread(self.state.create, record)
        return self._sandbox(record)

    async def get(self, sandbox_id: str) -> LocalSandbox:
        record = await asyncio.to_thread(self.state.load, sandbox_id)
        if record.expires_at is not None and record.expires_at <= time.time():
            await self._remove_expired(record)
            raise NotFoundError(f"The local sandbox {sandbox_id} expired and was removed: create a new one.")
        return self._sandbox(record)

    async def list(self, labels: Mapping[str, str] | None = None) -> builtins.list[Sandbox]:
        await self._reap_expired()
        wanted = dict(labels or {}).items()
        records = await asyncio.to_thread(self.state.all)
        now = time.time()
        # An expired record outlives the sweep only when its files could not all be removed: not live.
        live = [record for record in records if record.expires_at is None or record.expires_at > now]
        return [self._sandbox(record) for record in live if wanted <= record.labels.items()]

    async def check(self) -> None:
        if not self.unisolated:
            find_bwrap()
            find_keyctl()
        if not os.access(self.state.root, os.W_OK):
            raise BackendUnavailableError(f"The state folder {self.state.root} is not writable.")

    def observe_egress(self, observer: Observer) -> None:
        """Call `observer` with every connection the egress proxies decide (the audit log gets them anyway)."""
        self._egress.observers.append(observer)

    async def aclose(self) -> None:
        await self._agents.aclose()
        await self._port_connectors.aclose()
        await asyncio.to_thread(self._egress.stop)

    async def _reap_expired(self) -> None:
        """Remove sandboxes whose time ran out, also those that expired while no server was running."""
        now = time.time()
        for record in await asyncio.to_thread(self.state.all):
            if record.expires_at is not None and record.expires_at <= now:
                await self._remove_expired(record)

    async def _remove_expired(self, record: SandboxRecord) -> None:
        """Terminate an expired sandbox; a failure is logged, not raised, since it is a side duty of the call
        that found it, and the record, which stays until the files are gone, makes the next sweep try again."""
        try:
            await self._sandbox(record).terminate()
        except Exception:
            logger.exception("removing the expired sandbox %s failed; the next sweep tries again", record.id)

    def _sandbox(self, record: SandboxRecord) -> LocalSandbox:
        return LocalSandbox(self, record)

    def _network_of(self, source: Sandbox) -> bool | EgressPolicy:
        egress_rules = _local(source)._record.egress
        return False if egress_rules is None else EgressPolicy.from_json(egress_rules)

    async def _copy_workspace(self, source: Sandbox, target: Sandbox, *, max_bytes: int) -> None:
        await _local(target).copy_workspace_from(_local(source), max_bytes=max_bytes)

    def can_suspend(self, network: bool | EgressPolicy = False) -> bool:
        return True

    def _cgroup(self, sandbox_id: str) -> SandboxCgroup | None:
        return self._cgroups.ensure(sandbox_id, self.resources) if self._cgroups else None

    def _argv(
        self,
        record: SandboxRecord,
        inner: Sequence[str],
        *,
        cwd: str,
        env: Mapping[str, str],
        join: JoinFds | None = None,
        holder: bool = False,
        mounts: Mounts | None = None,
    ) -> builtins.list[str]:
        cgroup = self._cgroup(record.id)
        ulimits = self.resources.ulimit_lines(
            per_process_memory=cgroup is None, process_count=cgroup is None and self._owner is not None
        )
        procs = cgroup.procs_files if cgroup else []
        if self._bwrap is None or self._seccomp is None:
            return launcher_argv(inner, procs_files=procs, ulimits=ulimits, user=None)
        seccomp_fd = free_descriptor(join.all if join else ())
        sandboxed = bwrap_argv(
            self._bwrap,
            mounts or self.state.mounts(record.id),
            cwd=cwd,
            own_network=not self._as_root,
            env=env,
            command=inner,
            seccomp_fd=seccomp_fd,
            join=join,
            holder=holder,
        )
        return launcher_argv(
            sandboxed,
            procs_files=procs,
            ulimits=ulimits,
            user=self._owner,
            keyctl=self._keyctl,
            open_files={seccomp_fd: self._seccomp},
            # As root, every command enters its holder's network namespace: one loopback per sandbox, where the
            # proxy listens and a server one command starts answers the next.
            netns_fd=join.netns if join is not None and self._as_root else None,
        )

    def _environment(self, record: SandboxRecord, mounts: Mounts, env: Mapping[str, str]) -> dict[str, str]:
        home = str(mounts.tmp) if self.unisolated else "/tmp"
        base = {"PATH": SANDBOX_PATH, "HOME": home, "LANG": "C.UTF-8", "TERM": "dumb"}
        if record.egress is not None and not self.unisolated:
            base.update(egress.proxy_environment())
        return {**base, **env}

    async def _open_egress(self, record: SandboxRecord, netns_fd: int) -> None:
        """Serve the sandbox's proxy in its network namespace, open at `netns_fd`, if it has egress and no proxy
        listens there yet (a new server, or a new holder)."""
        if record.egress is None or self.unisolated:
            return
        place = os.fstat(netns_fd).st_ino
        if self._egress.serves(record.id, place):
            return
        policy = EgressPolicy.from_json(record.egress)
        try:
            await self._egress.open(record.id, place, lambda: listen_inside(netns_fd, egress.PROXY_PORT), policy)
        except OSError as error:
            # Code in the sandbox may hold the port (taken while no server ran): it only cuts off its own egress.
            logger.warning("the egress proxy of sandbox %s cannot listen: %s", record.id, error)


class LocalSandbox(Sandbox):
    """One local sandbox; cheap to construct, since all its state is on disk."""

    def __init__(self, provider: LocalProvider, record: SandboxRecord) -> None:
        super().__init__(
            SandboxInfo(
                id=record.id,
                provider=provider.name,
                labels=dict(record.labels),
                created_at=record.created_at,
                expires_at=record.expires_at,
                network=record.network,
                reachable=EgressPolicy.from_json(record.egress).reachable if record.egress else (),
                suspended=record.suspended,
                suspend_at=record.suspend_at,
            ),
            provider.limits,
        )
        self._provider = provider
        self._record = record
        self._mounts = provider.state.mounts(record.id)
        self._holder = Holder(provider.state.folder(record.id))
        self._files = HostFiles(
            {paths.WORKDIR: self._mounts.workspace, "/tmp": self._mounts.tmp},
            provider._owner,
            provider.state.disk_of(record.id),
        )

    async def _run(self, command: str, *, timeout: float, cwd: str, env: dict[str, str]) -> CommandResult:
        if cwd != paths.WORKDIR and not await self._exists(cwd):
            raise NotFoundError(f"The working directory {cwd} does not exist: create it first, or use /app.")
        oom_kills = self._oom_kills()
        result = None
        if await self.agent() is not None:
            with contextlib.suppress(processes.NoSpoolSpace):  # a full disk: run it without keeping its output
                result = await processes.run(self, command, timeout=timeout, cwd=cwd, env=env)
        if result is None:
            completed = await self._launch(["/bin/sh", "-c", command], timeout=timeout, cwd=cwd, env=env)
            result = CommandResult(
                stdout=completed.stdout.text(),
                stderr=completed.stderr.text(),
                exit_code=_exit_code(completed),
                duration=completed.duration,
                timed_out=completed.timed_out,
                stdout_bytes=completed.stdout.total_bytes,
                stderr_bytes=completed.stderr.total_bytes,
                dropped_bytes=completed.stdout.dropped_bytes + completed.stderr.dropped_bytes,
            )
        if result.exit_code == 128 + signal.SIGKILL and self._oom_kills() > oom_kills:
            notice = (
                f"\n[killed: the sandbox exceeded its memory limit of "
                f"{self._provider.resources.memory_bytes // (1024 * 1024)} MiB]\n"
            )
            result = dataclasses.replace(result, stderr=result.stderr + notice)
        disk = self._provider.state.disk_of(self.id)
        if disk is not None and any(text in result.stderr for text in NO_SPACE_TEXT):
            result = dataclasses.replace(result, stderr=result.stderr + f"\n[{usage_line(disk)}]\n")
        return result

    async def agent(self) -> AgentChannel | None:
        """The channel to this sandbox's agent, or None where commands run one process each (no holder)."""
        if self._provider.unisolated or not self._provider.keep_background:
            return None
        self._require_alive()
        connect = agent_connection(self.id, self._install_agent, self._launch_with_socket)
        return await self._provider._agents.channel(self.id, connect, generation=self._holder.current)

    async def connect_port(self, port: int) -> socket.socket:
        """A TCP connection to loopback port `port` of the network the sandbox's commands run in, which the host
        cannot reach otherwise (`SandboxError` when nothing listens there): made inside that network by a helper
        (`port_connector`) and handed over, so it leads nowhere else."""
        check_port(port)
        self._require_network_of_its_own()
        connector = ["python3", "-u", "-E", "-s", "-S", "-c", CONNECTOR]
        return await self._provider._port_connectors.connect(self.id, port, self._launch_with_socket, connector)

    def _require_network_of_its_own(self) -> None:
        if self._provider.unisolated or not self._provider.keep_background:
            raise SandboxError("This sandbox runs one process per command, so nothing in it can listen on a port.")

    async def port_route(self, port: int) -> PortRoute:
        """Each connection is one `connect_port`, inside the sandbox's own network namespace."""
        check_port(port)
        self._require_network_of_its_own()

        async def dial() -> Stream:
            try:
                return Stream(await self.connect_port(port))
            except SandboxError as error:
                raise PortUnreachable(str(error)) from None

        return PortRoute(port, dial)

    async def _install_agent(self) -> None:
        for name, content in program.FILES.items():
            await self._write_file(f"{program.AGENT_DIR}/{name}", content)

    async def _launch_with_socket(self, inner: Sequence[str], stdin: socket.socket) -> asyncio.subprocess.Process:
        environment = self._provider._environment(self._record, self._mounts, {})
        with await self._join_holder() as fds:
            argv = self._provider._argv(self._record, inner, cwd=paths.WORKDIR, env=environment, join=fds)
            return await asyncio.create_subprocess_exec(
                *argv,
                stdin=stdin.fileno(),
                stdout=asyncio.subprocess.DEVNULL,
                stderr=asyncio.subprocess.PIPE,
                env=_LAUNCHER_ENV,
                cwd="/",
                start_new_session=True,
                pass_fds=fds.all,
            )

    async def _launch(
        self,
        inner: Sequence[str],
        *,
        timeout: float,
        cwd: str = paths.WORKDIR,
        env: Mapping[str, str] | None = None,
        output: OutputLimit | None = None,
        stdin: bytes | None = None,
    ) -> Completed:
        self._require_alive()
        environment = self._provider._environment(self._record, self._mounts, env or {})
        if self._provider.unisolated:
            argv = self._provider._argv(self._record, inner, cwd=cwd, env=environment)
            host_cwd = str(self._mounts.workspace / posixpath.relpath(cwd, paths.WORKDIR))
            return await run_process(
                argv, timeout=timeout, output=output or self.limits.output, env=environment, stdin=stdin, cwd=host_cwd
            )
        if not self._provider.keep_background:
            argv = self._provider._argv(self._record, inner, cwd=cwd, env=environment)
            return await run_process(
                argv, timeout=timeout, output=output or self.limits.output, env=_LAUNCHER_ENV, stdin=stdin, cwd="/"
            )
        with await self._join_holder() as fds:
            argv = self._provider._argv(self._record, inner, cwd=cwd, env=environment, join=fds)
            return await run_process(
                argv,
                timeout=timeout,
                output=output or self.limits.output,
                env=_LAUNCHER_ENV,
                stdin=stdin,
                cwd="/",
                pass_fds=fds.all,
            )

    @property
    def keeps_background(self) -> bool:
        return self._provider.keep_background or self._provider.unisolated

    async def _join_holder(self) -> JoinFds:
        """Descriptors of the holder's namespaces; a holder that is ending (killed a moment ago, its namespaces
        already gone) is waited out and started afresh."""
        record = await self._ensure_holder()
        try:
            fds = self._holder.join(record)
        except ProcessLookupError:
            for _ in range(int(HOLDER_EXIT_WAIT / HOLDER_EXIT_POLL)):
                if self._holder.current() != record:
                    break
                await asyncio.sleep(HOLDER_EXIT_POLL)
            fds = self._holder.join(await self._ensure_holder())
        try:
            await self._provider._open_egress(self._record, fds.netns)
        except BaseException:
            fds.__exit__(None, None, None)
            raise
        return fds

    async def _ensure_holder(self) -> HolderRecord:
        """The sandbox's holder, (re)started when missing; a restart means its background processes are gone."""
        record = self._holder.current()
        if record is not None:
            return record
        environment = self._provider._environment(self._record, self._mounts, {})
        launch = self._provider._argv(self._record, HOLDER_COMMAND, cwd=paths.WORKDIR, env=environment, holder=True)
        started, restarted = await asyncio.to_thread(self._holder.ensure, launch)
        if restarted:
            logger.warning("The holder of sandbox %s was gone: its background processes ended.", self.id)
        return started

    async def copy_workspace_from(self, source: LocalSandbox, *, max_bytes: int) -> None:
        """Copy `source`'s /app into this sandbox's, by a command of this sandbox that sees it read-only (`fork`)."""
        self._require_alive()
        source._require_alive()
        provider = self._provider
        environment = provider._environment(self._record, self._mounts, {})
        if provider.unisolated:
            inner = fork.copy_command(str(source._mounts.workspace), str(self._mounts.workspace), max_bytes)
            launcher_env = environment
        else:
            inner = fork.copy_command(fork.SOURCE, paths.WORKDIR, max_bytes)
            launcher_env = _LAUNCHER_ENV
        mounts = dataclasses.replace(self._mounts, read_only=((source._mounts.workspace, fork.SOURCE),))
        argv = provider._argv(self._record, inner, cwd=paths.WORKDIR, env=environment, mounts=mounts)
        completed = await run_process(argv, timeout=COPY_TIMEOUT, output=fork.COMPLAINTS, env=launcher_env, cwd="/")
        quota = provider.resources if provider.state.disk_of(self.id) is not None else None
        fork.raise_for(completed, timeout=COPY_TIMEOUT, max_bytes=max_bytes, quota=quota)

    def _oom_kills(self) -> int:
        cgroups = self._provider._cgroups
        return cgroups.existing(self.id).oom_kills() if cgroups else 0

    async def _inside(
        self, script: str, *, stdin: bytes | None = None, max_output: int = 1024 * 1024
    ) -> tuple[CommandResult, bytes]:
        """Run one of `shell_files`' scripts in the sandbox, keeping its stdout as raw bytes."""
        completed = await self._launch(
            ["/bin/sh", "-c", script],
            timeout=_FILE_OPERATION_TIMEOUT,
            output=OutputLimit(max_bytes=max_output + 1, head_share=1.0),
            stdin=stdin,
        )
        result = CommandResult(
            stdout="",
            stderr=completed.stderr.text(),
            exit_code=_exit_code(completed),
            duration=completed.duration,
            timed_out=completed.timed_out,
        )
        if completed.stdout.dropped_bytes or completed.stdout.total_bytes > max_output:
            raise TooLargeError(f"The output exceeds the limit of {max_output} bytes.")
        return result, completed.stdout.data()

    async def _write_file(self, path: str, data: bytes) -> None:
        self._require_alive()
        try:
            await asyncio.to_thread(self._files.write, path, data)
        except (NeedsSandbox, PermissionError):
            staging = f"{posixpath.dirname(path)}/.kas-{secrets.token_hex(6)}.part"
            script = (
                f"{shell_files.prepare_write(path, staging)} && "
                f"{{ cat > {_q(staging)} && {shell_files.commit_write(path, staging)} || "
                f"{{ {shell_files.discard(staging)}; exit 1; }}; }}"
            )
            result, _ = await self._inside(script, stdin=data)
            shell_files.raise_for_status(result, path, "write")

    async def _read_file(self, path: str, max_bytes: int) -> bytes:
        self._require_alive()
        try:
            return await asyncio.to_thread(self._files.read, path, max_bytes)
        except (NeedsSandbox, PermissionError):
            try:
                result, data = await self._inside(shell_files.read_file(path, max_bytes), max_output=max_bytes)
            except TooLargeError:
                raise TooLargeError(
                    f"{path} is larger than the limit of {max_bytes} bytes: read it in parts with `head -c`."
                ) from None
            shell_files.raise_for_status(result, path, "read")
            return data

    async def _list_dir(self, path: str, max_entries: int) -> list[FileEntry]:
        self._require_alive()
        try:
            return await asyncio.to_thread(self._files.list_dir, path, max_entries)
        except (NeedsSandbox, PermissionError):
            script = shell_files.list_dir(path, max_entries)
            result, data = await self._inside(script, max_output=(max_entries + 1) * shell_files.LIST_RECORD_BYTES)
            shell_files.raise_for_status(result, path, "list")
            return shell_files.parse_listing(path, data.decode("utf-8", "replace"), max_entries)

    async def _exists(self, path: str) -> bool:
        self._require_alive()
        try:
            return await asyncio.to_thread(self._files.exists, path)
        except (NeedsSandbox, PermissionError):
            result, _ = await self._inside(shell_files.exists(path))
            return result.exit_code == 0

    async def set_expiry(self, expires_at: float | None) -> None:
        self._require_alive()
        self._record.expires_at = expires_at
        self._info = SandboxInfo(**{**self._info.__dict__, "expires_at": expires_at})
        await asyncio.to_thread(self._provider.state.save, self._record)

    async def terminate(self) -> None:
        await self._stop_processes()
        cgroups = self._provider._cgroups
        if cgroups is not None:
            await asyncio.to_thread(cgroups.existing(self.id).remove)
        if self._provider.state.folder(self.id).exists():
            await asyncio.to_thread(self._provider.state.remove, self.id)

    async def _stop_processes(self) -> None:
        """End everything running in the sandbox: its agent (and kernel), its holder with every process in the
        holder's pid namespace, and whatever else its cgroup holds (detached processes of an unisolated one)."""
        await self._provider._agents.forget(self.id)
        await self._provider._port_connectors.close(self.id)
        await self._provider._egress.close(self.id)
        await asyncio.to_thread(self._holder.stop)
        cgroups = self._provider._cgroups
        if cgroups is not None:
            await asyncio.to_thread(cgroups.existing(self.id).kill_all)

    @property
    def can_suspend(self) -> bool:
        return True

    async def set_suspend_at(self, moment: float) -> None:
        self._require_alive()
        await self._save(suspend_at=moment)

    async def suspend(self) -> None:
        """Stop its processes and unmount its disk image; the files stay in the state folder (on the image), and the
        next use mounts it again and starts a new holder."""
        self._require_alive()
        await self._save(suspended=True, suspend_at=None)
        await self._stop_processes()
        if self._provider.state.disk_of(self.id) is not None:
            await asyncio.to_thread(detach_disk, self._provider.state.folder(self.id))

    async def resume(self, timeout: float) -> None:
        self._require_alive()
        await self._save(suspended=False)

    async def _save(self, **changes: Any) -> None:
        """Change the record, on disk and in `info`, in one step."""
        self._record = dataclasses.replace(self._record, **changes)
        self._info = dataclasses.replace(self._info, **changes)
        await asyncio.to_thread(self._provider.state.save, self._record)

    def _require_alive(self) -> None:
        # Blocks for a few milliseconds only on the first use after a reboot, when the disk image is mounted.
        self._provider.state.attach(self.id)
        if not self._mounts.workspace.is_dir():
            raise SandboxGoneError(
                f"The sandbox {self.id} is gone: it was terminated, expired, or its workspace was deleted. "
                "Create a new sandbox."
            )


def _local(sandbox: Sandbox) -> LocalSandbox:
    if not isinstance(sandbox, LocalSandbox):
        raise InvalidArgumentError(f"Sandbox {sandbox.id} is not a local sandbox: a fork stays on its provider.")
    return sandbox


def _exit_code(completed: Completed) -> int:
    if completed.timed_out:
        return TIMEOUT_EXIT_CODE
    if completed.returncode < 0:
        return 128 - completed.returncode
    return completed.returncode


def _q(path: str) -> str:
    return shlex.quote(path)
