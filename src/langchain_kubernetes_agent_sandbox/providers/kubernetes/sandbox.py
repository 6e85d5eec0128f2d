"""One agent-sandbox pod behind a SandboxClaim, seen through the sandbox contract.

Files under `/app` go through the runtime's file API (it only reaches its base directory `/app` and strips
leading slashes, so `/app/x` is sent as `x`); every other path, and names the file API would mangle, go
through the shell in bounded base64 chunks.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import logging
import posixpath
import secrets
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field, replace
from typing import TypeVar

from k8s_agent_sandbox.models import ExecutionResult

from ... import paths, shell_files
from ...engine import processes
from ...engine.channel import AgentChannel, AgentLost
from ...engine.links import AgentLinks
from ...engine.memo import SandboxMemo
from ...errors import (
    BackendUnavailableError,
    InvalidArgumentError,
    IsDirectoryError,
    NotFoundError,
    PermissionDeniedError,
    SandboxError,
    SandboxGoneError,
    TimedOutError,
    TooLargeError,
)
from ...limits import ExecutionLimits
from ...ports import PortRoute, check_port
from ...results import CommandResult, FileEntry
from ...sandbox import Sandbox, SandboxInfo
from . import commands
from .agent import AgentUnavailable, Endpoint, pod_connection
from .claims import ClaimApi
from .config import KubernetesConfig
from .connection import Claims, Runtime
from .errors import translated
from .ports import route_of
from .suspension import Suspender

logger = logging.getLogger(__name__)

T = TypeVar("T")
READ_CHUNK_BYTES = 768 * 1024
"""Raw bytes per shell read: 1 MiB of base64 in one answer."""
POD_LOSS_GRACE = 2.0
"""How long a failed call waits for the Sandbox status to catch up with a pod that died."""
POD_LOSS_POLL = 0.1
AGENT_HEAD_START = 0.5
"""Seconds a pod's first command runs before its agent starts beside it (at once when the command ends sooner):
the two would share the pod's CPU, and the first command is what the caller waits for."""


@dataclass(frozen=True)
class Backend:
    config: KubernetesConfig
    claim_api: ClaimApi
    claims: Claims
    agents: AgentLinks = field(default_factory=AgentLinks)
    hosts_agent: SandboxMemo[bool] = field(default_factory=SandboxMemo)
    """Whether a sandbox's pod ran an agent for this server process: found out once, on first use."""


def _file_api_path(path: str) -> str | None:
    """The runtime file API's name for `path`, or None when only the shell can reach it."""
    if not paths.is_within(path, paths.WORKDIR):
        return None
    # The client refuses control characters, and a multipart filename carries `"`, `%` and `\\` escaped in ways
    # runtimes decode differently: such names go through the shell, which takes them byte for byte.
    if any(ord(char) < 0x20 or ord(char) == 0x7F or char in '"%\\' for char in path):
        return None
    return path[len(paths.WORKDIR) :] or "/"


class KubernetesSandbox(Sandbox):
    def __init__(
        self,
        backend: Backend,
        info: SandboxInfo,
        limits: ExecutionLimits,
        runtime: Runtime | None = None,
        *,
        suspendable: bool = False,
    ) -> None:
        super().__init__(info, limits)
        self._backend = backend
        self._config = backend.config
        self._runtime = runtime
        self._attaching = asyncio.Lock()
        self._terminated = False
        self._suspendable = suspendable

    @property
    def longest_run(self) -> float | None:
        limit = self._config.router_limit
        return None if limit is None else limit - self._config.timeout_margin

    async def _attached(self) -> Runtime:
        if self._terminated:
            raise SandboxGoneError(f"Sandbox {self.id} was terminated: create a new sandbox.")
        async with self._attaching:
            if self._runtime is None:
                with translated(self._config, "attach to the sandbox", self.id):
                    async with asyncio.timeout(self._config.api_timeout * 2):
                        self._runtime = await self._backend.claims.attach(self.id)
            return self._runtime

    async def _call(self, action: str, deadline: float, call: Callable[[Runtime], Awaitable[T]]) -> T:
        runtime = await self._attached()
        with translated(self._config, action, self.id):
            async with asyncio.timeout(deadline):
                return await call(runtime)

    async def _gone_or(self, error: Exception) -> Exception:
        """The pod is gone when the Sandbox object says so; otherwise the original error stands.

        The router answers 502 the moment a pod dies, while the Sandbox status follows a little later, so a
        Sandbox still reported ready is asked again for up to `POD_LOSS_GRACE` seconds.
        """
        try:
            state = await self._pod_state(grace=POD_LOSS_GRACE)
        except Exception:
            return error
        return error if state == "SandboxReady" else self._lost_pod(state)

    async def _pod_state(self, *, grace: float) -> str:
        """The Sandbox object's state, asked again for up to `grace` seconds while it still says ready."""
        runtime = await self._attached()
        with translated(self._config, "check the sandbox", self.id):
            async with asyncio.timeout(self._config.api_timeout + grace):
                give_up = time.monotonic() + grace
                while True:
                    state = await runtime.status()
                    if state != "SandboxReady" or time.monotonic() >= give_up:
                        return state
                    await asyncio.sleep(POD_LOSS_POLL)

    async def _refuse_reconnect_to_dying_pod(self) -> None:
        """Raise when the pod's agent, known to run, lost its connection and the Sandbox is no longer ready: the pod
        may be going with its claim (closed through another replica, say), and an agent started in a dying pod
        would serve a session that ended."""
        backend = self._backend
        if backend.hosts_agent.get(self) and backend.agents.open_channel(self.id) is None:
            state = await self._pod_state(grace=0)
            if state != "SandboxReady":
                raise self._lost_pod(state)

    def _lost_pod(self, state: str) -> SandboxGoneError:
        return SandboxGoneError(
            f"Sandbox {self.id} lost its pod ({state}) in namespace {self._config.namespace!r}; its files are gone. "
            "Create a new sandbox."
        )

    async def _exec(self, script: str, limit: float) -> tuple[ExecutionResult, float]:
        """Run `script` (already a full argv string) with the limit enforced in the pod and on the wait."""
        started = time.monotonic()
        answer = await self._call(
            "run a command",
            limit + self._config.timeout_margin,
            lambda runtime: runtime.run(script, timeout=limit, command_timeout=limit + commands.RUNTIME_GRACE),
        )
        return answer, time.monotonic() - started

    async def agent(self) -> AgentChannel | None:
        """The channel to the pod's agent on its own port, or None where the pod cannot host one (a runtime that
        ends what a command leaves running, a router that does not forward the port): found out on first use, after
        which a failure to reach it is an error, not a silent change of engine."""
        port = self._config.agent_port
        backend = self._backend
        if port is None or backend.hosts_agent.get(self) is False:
            return None
        connect = pod_connection(self.id, port, self._run_script_for_agent, self._agent_endpoint)
        await self._refuse_reconnect_to_dying_pod()
        try:
            channel = await backend.agents.channel(self.id, connect, generation=lambda: None)
        except (BackendUnavailableError, NotFoundError) as error:
            raise await self._gone_or(error) from error
        except AgentUnavailable as error:
            if backend.hosts_agent.get(self):  # lost: with its pod, maybe, which the caller can tell
                raise AgentLost(f"{error}; try again, or close the session if it persists.") from None
            logger.info("sandbox %s runs one-shot commands only: %s", self.id, error)
            backend.hosts_agent.put(self, False)
            return None
        backend.hosts_agent.put(self, True)
        return channel

    async def _channel_for_run(self) -> AgentChannel | None:
        """The agent's channel for a command when it is open, or when the pod is known to host an agent; else None:
        a pod's first command does not wait for the agent (`_with_agent_started`), later ones find it."""
        backend = self._backend
        if self._config.agent_port is None:
            return None
        channel = backend.agents.open_channel(self.id)
        if channel is not None or backend.hosts_agent.get(self) is None:
            return channel
        try:
            return await self.agent()
        except (TimedOutError, BackendUnavailableError):
            return None  # the agent could not be reached now: the one-shot path meets the fault and says what it is

    async def _with_agent_started(self, work: Awaitable[T]) -> T:
        """`work` (a one-shot command), with the pod's agent started in the background, if it is not known yet, once
        `work` is done or has run for `AGENT_HEAD_START` seconds."""
        if self._config.agent_port is None or self._backend.hosts_agent.get(self) is not None:
            return await work
        task = asyncio.ensure_future(work)
        try:
            await asyncio.wait({task}, timeout=AGENT_HEAD_START)
            self._backend.agents.prepare(self.id, self.agent)
            return await task
        finally:
            task.cancel()  # when the caller was cancelled; a finished task ignores it

    async def _run_script_for_agent(self, script: str, limit: float) -> tuple[str, str, int]:
        answer, _ = await self._exec(commands.wrap(script, limit, "/", {}), limit)
        return answer.stdout, answer.stderr, answer.exit_code

    async def _agent_endpoint(self) -> Endpoint:
        port = self._config.agent_port
        assert port is not None
        return await self._call("find the agent's port", self._config.api_timeout, lambda r: r.agent_endpoint(port))

    async def port_route(self, port: int) -> PortRoute:
        """Where the agent's port is reached, but for `port` (see `ports.route_of`)."""
        check_port(port)
        limit = self._config.api_timeout
        endpoint = await self._call("find the pod's address", limit, lambda r: r.agent_endpoint(port))
        return route_of(endpoint, port)

    async def _run(self, command: str, *, timeout: float, cwd: str, env: dict[str, str]) -> CommandResult:
        channel = await self._channel_for_run()
        if channel is not None:
            try:
                return await processes.run(self, command, timeout=timeout, cwd=cwd, env=env)
            except SandboxError as error:  # the agent was lost: with its pod, or killed in it
                raise await self._gone_or(error) from error
        if self.longest_run is not None and timeout > self.longest_run:
            raise InvalidArgumentError(
                f"timeout {timeout:g} s is longer than the sandbox-router allows: it ends every request after "
                f"{self._config.router_limit:g} s (its proxy timeout), so the command would be cut off without its "
                f"output. Ask for at most {self.longest_run:g} s, or run it in the background and poll its output."
            )
        started = time.monotonic()
        try:
            answer, duration = await self._with_agent_started(
                self._exec(commands.wrap(command, timeout, cwd, env), timeout)
            )
        except TimedOutError as error:
            return commands.unanswered(timeout, time.monotonic() - started, str(error))
        except (BackendUnavailableError, NotFoundError) as error:
            raise await self._gone_or(error) from error
        return commands.result_of(answer, timeout, duration, self.limits.output)

    async def _shell(self, script: str) -> CommandResult:
        """A file script through the shell, its whole output kept (no output cap)."""
        limit = self._config.file_timeout
        answer, duration = await self._exec(commands.wrap(script, limit, "/", {}), limit)
        return CommandResult(answer.stdout, answer.stderr, answer.exit_code, duration)

    async def _file_api_name(self, path: str) -> str | None:
        """The runtime file API's name for `path`, or None when only the shell can reach it."""
        return _file_api_path(path)

    async def _write_file(self, path: str, data: bytes) -> None:
        rel = await self._file_api_name(path)
        if rel is not None and rel != "/":
            timeout = self._config.file_timeout
            try:
                await self._call("write a file", timeout, lambda r: r.write(rel, data, timeout))
                return
            except (PermissionDeniedError, BackendUnavailableError):
                pass  # a symlink out of /app, or a parent that is a file: the shell says exactly what is wrong
        staging = f"{posixpath.dirname(path)}/.upload-{secrets.token_hex(6)}.part"
        shell_files.raise_for_status(await self._shell(shell_files.prepare_write(path, staging)), path, "write")
        try:
            for offset in range(0, len(data), shell_files.CHUNK_BYTES):
                chunk = data[offset : offset + shell_files.CHUNK_BYTES]
                result = await self._shell(shell_files.append_chunk(staging, chunk))
                shell_files.raise_for_status(result, path, "write")
            shell_files.raise_for_status(await self._shell(shell_files.commit_write(path, staging)), path, "write")
        except BaseException:
            await self._shell(shell_files.discard(staging))
            raise

    async def _read_file(self, path: str, max_bytes: int) -> bytes:
        rel = await self._file_api_name(path)
        if rel is not None:
            timeout = self._config.file_timeout
            try:
                return await self._call("read a file", timeout, lambda r: r.read(rel, max_bytes, timeout))
            except TooLargeError:
                raise TooLargeError(
                    f"{path} is larger than the limit of {max_bytes} bytes: read it in parts with `head -c`."
                ) from None
            except NotFoundError:
                if await self._exists(path):
                    raise IsDirectoryError(f"{path} is a directory: read needs a file path inside it.") from None
                raise NotFoundError(f"No such file: {path}. Check the path with list_files.") from None
            except PermissionDeniedError:
                pass  # a symlink that leaves /app: the shell can follow it
        return await self._read_by_shell(path, max_bytes)

    async def _read_by_shell(self, path: str, max_bytes: int) -> bytes:
        sized = await self._shell(shell_files.file_size(path, max_bytes))
        shell_files.raise_for_status(sized, path, "read")
        size = int(sized.stdout.strip() or 0)
        if size > max_bytes:
            raise TooLargeError(f"{path} has {size} bytes, over the limit of {max_bytes}: read it in parts.")
        data = bytearray()
        for offset in range(0, size, READ_CHUNK_BYTES):
            chunk = await self._shell(shell_files.read_chunk(path, offset, READ_CHUNK_BYTES))
            shell_files.raise_for_status(chunk, path, "read")
            data += base64.b64decode(chunk.stdout.strip())
        return bytes(data)

    async def _list_dir(self, path: str, max_entries: int) -> list[FileEntry]:
        """Through the shell, always: the runtime's listing knows only files and directories, not symlinks."""
        result = await self._shell(shell_files.list_dir(path, max_entries))
        shell_files.raise_for_status(result, path, "list")
        return shell_files.parse_listing(path, result.stdout, max_entries)

    async def _exists(self, path: str) -> bool:
        rel = await self._file_api_name(path)
        if rel is not None:
            timeout = self._config.file_timeout
            try:
                return await self._call("check a path", timeout, lambda r: r.exists(rel, timeout))
            except NotFoundError as error:
                raise await self._gone_or(error) from error
            except PermissionDeniedError:
                pass
        return await self._exists_by_shell(path)

    async def _exists_by_shell(self, path: str) -> bool:
        return (await self._shell(shell_files.exists(path))).exit_code == 0

    async def set_expiry(self, expires_at: float | None) -> None:
        """Move the exact expiry and the claim's shutdownTime backstop, never past the maximum lifetime."""
        ceiling = self.info.created_at + self._config.max_lifetime
        moment = ceiling if expires_at is None else min(expires_at, ceiling)
        with translated(self._config, "move the sandbox's expiry", self.id):
            async with asyncio.timeout(self._config.api_timeout):
                await self._backend.claim_api.set_expiry(self.id, moment)
        self._info = replace(self._info, expires_at=moment)

    @property
    def can_suspend(self) -> bool:
        return self._suspendable

    async def set_suspend_at(self, moment: float) -> None:
        with translated(self._config, "move the sandbox's idle deadline", self.id):
            async with asyncio.timeout(self._config.api_timeout):
                await Suspender(self._backend.claim_api).set_suspend_at(self.id, moment)
        self._info = replace(self._info, suspend_at=moment)

    async def suspend(self) -> None:
        """Mark the claim suspended and set its Sandbox's operatingMode to Suspended: the controller deletes the pod
        and keeps its PVCs (the pool's template keeps /app on one). This server's links to the pod go first."""
        await self._forget_pod()
        with translated(self._config, "suspend the sandbox", self.id):
            async with asyncio.timeout(self._config.api_timeout * 3):
                await Suspender(self._backend.claim_api).suspend(self.id, self._config.api_timeout)
        self._info = replace(self._info, suspended=True, suspend_at=None)

    async def resume(self, timeout: float) -> None:
        """Set the Sandbox Running again and wait for its new pod, whose agent is started by the next call."""
        await self._forget_pod()
        with translated(self._config, "resume the sandbox", self.id):
            async with asyncio.timeout(timeout + self._config.api_timeout * 3):
                await Suspender(self._backend.claim_api).resume(self.id, timeout)
        self._info = replace(self._info, suspended=False)

    async def _forget_pod(self) -> None:
        """Drop what this server knows of the current pod: its agent's channel, the runtime handle (its address)."""
        self._runtime = None
        await self.release()
        await self._backend.claims.release(self.id)

    async def release(self) -> None:
        """Close this server's connection to the pod's agent (the pod and its agent live on)."""
        await self._backend.agents.forget(self.id)

    async def terminate(self) -> None:
        """End the pod's agent and its processes, then delete the claim; agent-sandbox then deletes the Sandbox and
        its pod. Ending the agent first stops the processes at once rather than after the pod's grace period, and
        other replicas' channels to it break, so they learn the session ended instead of using a dying pod."""
        channel = self._backend.agents.open_channel(self.id)
        if channel is not None:
            with contextlib.suppress(SandboxError):
                await channel.send({"op": "shutdown"})
        self._runtime = None
        await self.release()
        await self._backend.claims.release(self.id)
        with translated(self._config, "terminate the sandbox", self.id):
            async with asyncio.timeout(self._config.api_timeout):
                await self._backend.claim_api.delete(self.id)
        self._terminated = True
