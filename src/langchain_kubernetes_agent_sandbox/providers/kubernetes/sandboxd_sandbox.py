"""A pod whose runtime is sandboxd (KEP-539.2): files over its REST API, processes over its gRPC `ProcessService`.

The sandbox is the Kubernetes provider's, with two differences. The engine's agent is reached through sandboxd's
process API (`sandboxd.agent_connection`) rather than a port of its own behind the router, so commands stream,
take stdin and signals, and jobs and the kernel live in the pod as on every channel; one-shot commands (a pod's
first, before its agent starts, and the shell's file scripts) are the client's unary `Execute`. And files under
`/app` use sandboxd's file API only when its root is `/app` (the project's working directory; the template says
`--root-dir /app`): a command without a directory runs in sandboxd's root, so `pwd` says which it is, asked once
per sandbox. Under any other root every path goes through the shell, since the file API could not reach `/app`.
"""

from __future__ import annotations

import asyncio
import logging
import posixpath
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

import grpc
import httpx
from k8s_agent_sandbox.models import (
    SandboxConnectionConfig,
    SandboxdInClusterConnectionConfig,
    SandboxdPodTunnelConnectionConfig,
)

from ... import paths
from ...engine.channel import AgentChannel, AgentLost, AgentSilent
from ...engine.memo import SandboxMemo
from ...errors import BackendUnavailableError, NotFoundError, TimedOutError
from . import sandboxd, sandboxd_files
from .agent import AgentUnavailable
from .config import ConnectionMode, KubernetesConfig, SandboxdAddress
from .connection import AsyncClaims, AsyncRuntime, BoundedApiClient, Claims, ThreadedClaims, ThreadedRuntime
from .sandbox import KubernetesSandbox

logger = logging.getLogger(__name__)
T = TypeVar("T")


def connection_config(config: KubernetesConfig) -> SandboxConnectionConfig:
    """The client's sandboxd config for the server's settings (`KubernetesConfig.__post_init__` checked them)."""
    ports = {"rest_port": config.sandboxd_rest_port, "grpc_port": config.sandboxd_grpc_port}
    if config.connection is ConnectionMode.TUNNEL:
        return SandboxdPodTunnelConnectionConfig(**ports)
    if config.sandboxd_address is SandboxdAddress.SERVICE:
        return SandboxdInClusterConnectionConfig(mode="in-cluster-service", **ports)
    return SandboxdInClusterConnectionConfig(mode="in-cluster-pod-ip", **ports)


class RestClient:
    """An HTTP client for sandboxd's REST API, made on first use: a claim whose files are never read pays nothing
    (building one costs a TLS context even for plain HTTP)."""

    def __init__(self) -> None:
        self._client: httpx.AsyncClient | None = None

    @property
    def http(self) -> httpx.AsyncClient:
        if self._client is None:
            self._client = httpx.AsyncClient(timeout=None)  # each call is bounded by the sandbox's own deadline
        return self._client

    async def aclose(self) -> None:
        if self._client is not None:
            await self._client.aclose()
            self._client = None


class SandboxdAsyncRuntime(AsyncRuntime):
    """The async client's handle on a sandboxd config: its gRPC channel is the client's own."""

    def __init__(self, handle: Any) -> None:
        super().__init__(handle)
        self.rest = RestClient()

    async def grpc_channel(self) -> grpc.aio.Channel:
        channel: grpc.aio.Channel = await self.handle.connector.grpc_channel()
        return channel

    async def rest_url(self) -> str:
        return str(await self.handle.connector.connect())

    async def close(self) -> None:
        await self.rest.aclose()
        await super().close()


class SandboxdThreadedRuntime(ThreadedRuntime):
    """The sync client's handle (the pod tunnel): its tunnel's gRPC port, reached with an async channel of ours,
    since the sync client's channel is a blocking one."""

    def __init__(self, handle: Any) -> None:
        super().__init__(handle)
        self.rest = RestClient()
        self._channel: grpc.aio.Channel | None = None
        self._target: str | None = None

    async def grpc_channel(self) -> grpc.aio.Channel:
        strategy = self.handle.connector.strategy
        if not getattr(strategy, "grpc_target", None):
            await asyncio.to_thread(strategy.connect)
        target = str(strategy.grpc_target)
        if self._channel is None or self._target != target:
            if self._channel is not None:
                await self._channel.close()
            self._channel, self._target = grpc.aio.insecure_channel(target), target
        return self._channel

    async def rest_url(self) -> str:
        return str(await asyncio.to_thread(self.handle.connector.strategy.connect))

    async def close(self) -> None:
        await self.rest.aclose()
        if self._channel is not None:
            await self._channel.close()
            self._channel = None
        await super().close()


SandboxdRuntime = SandboxdAsyncRuntime | SandboxdThreadedRuntime


class SandboxdAsyncClaims(AsyncClaims):
    runtime_type = SandboxdAsyncRuntime


class SandboxdThreadedClaims(ThreadedClaims):
    runtime_type = SandboxdThreadedRuntime


def sandboxd_claims(config: KubernetesConfig, api: BoundedApiClient) -> Claims:
    """Claims whose runtimes speak sandboxd: the sync client for the pod tunnel (kubectl), else the async one."""
    if config.connection is ConnectionMode.TUNNEL:
        return SandboxdThreadedClaims(config, connection_config(config))
    return SandboxdAsyncClaims(config, api, connection_config(config))


_SERVES_WORKDIR: SandboxMemo[bool] = SandboxMemo()
"""Whether a sandbox's sandboxd has `/app` as its root, asked once per sandbox and server process."""


class SandboxdSandbox(KubernetesSandbox):
    """A sandboxd pod: the agent through `Start`/`WriteStdin`, files through the REST API where it reaches."""

    @property
    def longest_run(self) -> float | None:
        return None  # no router in between: gRPC goes straight to the pod

    async def _sandboxd(self) -> SandboxdRuntime:
        runtime = await self._attached()
        assert isinstance(runtime, SandboxdAsyncRuntime | SandboxdThreadedRuntime)
        return runtime

    async def agent(self) -> AgentChannel | None:
        """The channel to the pod's agent, relayed by a process sandboxd started; None with `--agent-port 0`
        (one-shot `Execute` only) or where the pod cannot run the agent (no `python3`), found out on first use."""
        backend = self._backend
        if self._config.agent_port is None or backend.hosts_agent.get(self) is False:
            return None

        async def connect(replace: bool) -> Any:
            runtime = await self._sandboxd()
            channel = await self._call("reach sandboxd", self._config.api_timeout, lambda _: runtime.grpc_channel())
            return await sandboxd.agent_connection(channel, replace, name=f"sandbox {self.id}")

        await self._refuse_reconnect_to_dying_pod()
        try:
            try:
                channel = await backend.agents.channel(self.id, connect, generation=lambda: None)
            except AgentLost as error:
                if backend.hosts_agent.get(self) is not None or isinstance(error, AgentSilent):
                    raise
                # A first relay that started and then broke (its stream, its input, the agent's start in a busy
                # pod) may be a passing fault: once more before the pod is taken for one that cannot host one.
                logger.info("sandbox %s: the agent's first connection broke (%s); trying once more", self.id, error)
                channel = await backend.agents.channel(self.id, connect, generation=lambda: None)
        except (BackendUnavailableError, NotFoundError, TimedOutError) as error:
            raise await self._gone_or(error) from error
        except (AgentUnavailable, AgentLost) as error:
            if backend.hosts_agent.get(self):  # lost: with its pod, maybe, which the caller can tell
                raise AgentLost(f"{error}; try again, or close the session if it persists.") from None
            if isinstance(error, AgentSilent):
                # An agent that did not answer in time (a starved pod) says nothing about what the pod can run:
                # marking it one-shot would put jobs on shell scripts, whose processes sandboxd ends.
                raise TimedOutError(f"The agent of sandbox {self.id} did not answer ({error}); try again.") from None
            gone = await self._gone_or(error)
            if gone is not error:
                raise gone from error
            logger.info("sandbox %s runs one-shot commands only: %s", self.id, error)
            backend.hosts_agent.put(self, False)
            return None
        backend.hosts_agent.put(self, True)
        return channel

    async def _file_api_reaches_workdir(self) -> bool:
        """Whether sandboxd's root is `/app`: where a command without a directory runs, asked once."""
        known = _SERVES_WORKDIR.get(self)
        if known is None:
            answer, _ = await self._exec("pwd -P", self._config.file_timeout)
            if answer.exit_code != 0:
                return False  # the shell then, this time; asked again next time
            known = posixpath.normpath(answer.stdout.strip() or ".") == paths.WORKDIR
            _SERVES_WORKDIR.put(self, known)
        return known

    async def _file_api_name(self, path: str) -> str | None:
        return await super()._file_api_name(path) if await self._file_api_reaches_workdir() else None

    async def _read_file(self, path: str, max_bytes: int) -> bytes:
        rel = await self._file_api_name(path)
        if rel is not None:
            try:
                return await self._on_file_api(
                    "read a file", lambda r, url: sandboxd_files.read(r.rest.http, url, rel, path, max_bytes)
                )
            except sandboxd_files.ShellNeeded:
                pass
        return await self._read_by_shell(path, max_bytes)

    async def _exists(self, path: str) -> bool:
        rel = await self._file_api_name(path)
        if rel is not None:
            try:
                return await self._on_file_api(
                    "check a path", lambda r, url: sandboxd_files.exists(r.rest.http, url, rel)
                )
            except sandboxd_files.ShellNeeded:
                pass
        return await self._exists_by_shell(path)

    async def _on_file_api(self, action: str, call: Callable[[SandboxdRuntime, str], Awaitable[T]]) -> T:
        """`call` on sandboxd's REST API; a pod that cannot be reached is asked whether it is gone."""
        runtime = await self._sandboxd()
        try:
            async with asyncio.timeout(self._config.file_timeout):
                return await call(runtime, await runtime.rest_url())
        except (httpx.TransportError, TimeoutError) as error:
            unreachable = BackendUnavailableError(
                f"Could not {action}: sandboxd of sandbox {self.id} did not answer ({error or 'in time'}). "
                "Check the pod and that its REST port is reachable from the server."
            )
            raise await self._gone_or(unreachable) from error
