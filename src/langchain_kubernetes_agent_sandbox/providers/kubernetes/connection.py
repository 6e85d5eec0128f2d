"""Connecting to the cluster: the Kubernetes API client, and `k8s-agent-sandbox` clients for the data plane.

Direct, gateway and in-cluster connections use the async client. The kubectl tunnel exists only in the sync
client, so tunnel mode runs it in worker threads behind the same small async interface (`Claims`, `Runtime`).
"""

from __future__ import annotations

import abc
import asyncio
import io
import math
from typing import Any, Protocol

import aiohttp
import kubernetes.config
from k8s_agent_sandbox.async_sandbox_client import AsyncSandboxClient
from k8s_agent_sandbox.models import (
    ExecutionResult,
    SandboxConnectionConfig,
    SandboxDirectConnectionConfig,
    SandboxGatewayConnectionConfig,
    SandboxInClusterConnectionConfig,
    SandboxLocalTunnelConnectionConfig,
)
from k8s_agent_sandbox.sandbox_client import SandboxClient
from kubernetes_asyncio import client as k8s
from kubernetes_asyncio import config as k8s_config

from .agent import Endpoint, endpoint_of
from .config import ConnectionMode, KubernetesConfig

WATCH_SLACK = 10.0
"""A watch may stay silent for its whole timeoutSeconds; its request deadline allows that plus this."""


class BoundedApiClient(k8s.ApiClient):  # type: ignore[misc]
    """An API client whose requests end: kubernetes_asyncio waits forever for a hung API server by default."""

    def __init__(self, configuration: k8s.Configuration, request_timeout: float) -> None:
        super().__init__(configuration=configuration)
        self.request_timeout = request_timeout

    def request(self, method: str, url: str, query_params: Any = None, *args: Any, **kwargs: Any) -> Any:
        if kwargs.get("_request_timeout") is None:
            params = dict(query_params or [])
            limit = self.request_timeout
            if params.get("watch"):
                limit = float(params.get("timeoutSeconds") or 0) + WATCH_SLACK
            kwargs["_request_timeout"] = aiohttp.ClientTimeout(total=limit)
        return super().request(method, url, query_params, *args, **kwargs)


async def api_client(config: KubernetesConfig) -> BoundedApiClient:
    """The cluster kubectl would pick: the kubeconfig named in the settings, else in-cluster, else KUBECONFIG."""
    configuration = k8s.Configuration()
    if config.kubeconfig:
        await k8s_config.load_kube_config(config_file=config.kubeconfig, client_configuration=configuration)
    else:
        try:
            k8s_config.load_incluster_config(client_configuration=configuration)
        except k8s_config.ConfigException:
            await k8s_config.load_kube_config(client_configuration=configuration)
    return BoundedApiClient(configuration, config.api_timeout)


def connection_config(config: KubernetesConfig) -> SandboxConnectionConfig:
    if config.connection is ConnectionMode.DIRECT:
        return SandboxDirectConnectionConfig(api_url=config.api_url or "")
    if config.connection is ConnectionMode.GATEWAY:
        return SandboxGatewayConnectionConfig(
            gateway_name=config.gateway_name or "", gateway_namespace=config.gateway_namespace
        )
    if config.connection is ConnectionMode.IN_CLUSTER:
        return SandboxInClusterConnectionConfig()
    return SandboxLocalTunnelConnectionConfig()


class Runtime(Protocol):
    """The data plane of one claimed sandbox."""

    sandbox_name: str

    async def run(self, command: str, timeout: float, command_timeout: float) -> ExecutionResult: ...

    async def write(self, path: str, data: bytes, timeout: float) -> None: ...

    async def read(self, path: str, max_bytes: int, timeout: float) -> bytes: ...

    async def exists(self, path: str, timeout: float) -> bool: ...

    async def status(self) -> str:
        """`SandboxReady`, `SandboxNotReady` or `SandboxNotFound`, from the Sandbox object."""
        ...

    async def agent_endpoint(self, port: int) -> Endpoint:
        """Where the pod's agent listening on `port` is reached (see `agent.endpoint_of`)."""
        ...

    async def close(self) -> None: ...


class Claims(Protocol):
    """Claiming sandboxes and attaching to claims; deleting claims is done through the Kubernetes API directly."""

    async def create(self, name: str, labels: dict[str, str], shutdown_after: int) -> Runtime:
        """The claim `name` on the warm pool, made (or, made by an attempt before, adopted), bound and ready."""
        ...

    async def attach(self, claim: str) -> Runtime: ...

    async def release(self, claim: str) -> None:
        """Close the claim's runtime and forget it, here and in the client: its claim is gone or going."""
        ...

    async def close(self) -> None: ...


class TrackedClaims(abc.ABC):
    """The runtimes handed out, by claim, so that the end of a claim releases its runtime.

    The `k8s-agent-sandbox` clients keep every sandbox handle they made (each with its own HTTP client and TLS
    context, most of a MiB) until the handle is deleted through them; this provider deletes claims through the
    Kubernetes API instead, so without a release every session ever served would stay in memory.
    """

    def __init__(self) -> None:
        self._runtimes: dict[str, Runtime] = {}

    def _track(self, claim: str, runtime: Runtime) -> Runtime:
        self._runtimes[claim] = runtime
        return runtime

    async def release(self, claim: str) -> None:
        runtime = self._runtimes.pop(claim, None)
        if runtime is not None:
            await runtime.close()
            await self._forget_closed()

    @abc.abstractmethod
    async def _forget_closed(self) -> None:
        """Make the client drop its closed handles."""


def _seconds(value: float) -> int:
    return max(1, math.ceil(value))


class _AsyncBuffer:
    def __init__(self) -> None:
        self.data = bytearray()

    async def write(self, chunk: bytes) -> int:
        self.data += chunk
        return len(chunk)


class AsyncRuntime:
    def __init__(self, handle: Any) -> None:
        self.handle = handle
        self.sandbox_name = str(handle.sandbox_id)

    async def run(self, command: str, timeout: float, command_timeout: float) -> ExecutionResult:
        result: ExecutionResult = await self.handle.commands.run(
            command, timeout=timeout, command_timeout=command_timeout
        )
        return result

    async def write(self, path: str, data: bytes, timeout: float) -> None:
        await self.handle.files.write(path, io.BytesIO(data), timeout=timeout)

    async def read(self, path: str, max_bytes: int, timeout: float) -> bytes:
        buffer = _AsyncBuffer()
        await self.handle.files.read_to(path, buffer, timeout=timeout, max_bytes=max_bytes)
        return bytes(buffer.data)

    async def exists(self, path: str, timeout: float) -> bool:
        return bool(await self.handle.files.exists(path, timeout=timeout))

    async def status(self) -> str:
        return str((await self.handle.status())[0])

    async def agent_endpoint(self, port: int) -> Endpoint:
        handle = self.handle
        base_url = await handle.connector.connect()
        pod_ip = await handle.get_pod_ip()
        return endpoint_of(handle.connection_config, base_url, self.sandbox_name, handle.namespace, pod_ip, port)

    async def close(self) -> None:
        await self.handle.close_connection()


class AsyncClaims(TrackedClaims):
    """`AsyncSandboxClient` without automatic cleanup: a claim it merely found must never be deleted by it."""

    runtime_type: type[AsyncRuntime] = AsyncRuntime

    def __init__(
        self, config: KubernetesConfig, api: BoundedApiClient, connection: SandboxConnectionConfig | None = None
    ) -> None:
        super().__init__()
        self.config = config
        self.client: Any = AsyncSandboxClient(
            connection_config=connection or connection_config(config), cleanup=False, api_client=api
        )

    async def create(self, name: str, labels: dict[str, str], shutdown_after: int) -> Runtime:
        handle = await self.client.create_sandbox(
            self.config.warm_pool,
            namespace=self.config.namespace,
            sandbox_ready_timeout=_seconds(self.config.ready_timeout),
            labels=labels,
            claim_name=name,
            adopt_existing=True,
            shutdown_after_seconds=shutdown_after,
        )
        return self._track(name, self.runtime_type(handle))

    async def attach(self, claim: str) -> Runtime:
        handle = await self.client.get_sandbox(
            claim, namespace=self.config.namespace, resolve_timeout=_seconds(self.config.api_timeout)
        )
        return self._track(claim, self.runtime_type(handle))

    async def _forget_closed(self) -> None:
        await self.client.list_active_sandboxes()  # listing is what prunes closed handles

    async def close(self) -> None:
        self._runtimes.clear()
        await self.client.close()


class ThreadedRuntime:
    """A sync `Sandbox` handle, each call in a worker thread."""

    def __init__(self, handle: Any) -> None:
        self.handle = handle
        self.sandbox_name = str(handle.sandbox_id)

    async def run(self, command: str, timeout: float, command_timeout: float) -> ExecutionResult:
        run = self.handle.commands.run
        result: ExecutionResult = await asyncio.to_thread(
            run, command, timeout=timeout, command_timeout=command_timeout
        )
        return result

    async def write(self, path: str, data: bytes, timeout: float) -> None:
        await asyncio.to_thread(self.handle.files.write, path, io.BytesIO(data), timeout=timeout)

    async def read(self, path: str, max_bytes: int, timeout: float) -> bytes:
        buffer = io.BytesIO()
        read_to = self.handle.files.read_to
        await asyncio.to_thread(read_to, path, buffer, timeout=timeout, max_bytes=max_bytes)
        return buffer.getvalue()

    async def exists(self, path: str, timeout: float) -> bool:
        return bool(await asyncio.to_thread(self.handle.files.exists, path, timeout=timeout))

    async def status(self) -> str:
        return str((await asyncio.to_thread(self.handle.status))[0])

    async def agent_endpoint(self, port: int) -> Endpoint:
        handle = self.handle
        base_url = await asyncio.to_thread(handle.connector.strategy.connect)
        pod_ip = await asyncio.to_thread(handle.get_pod_ip)
        return endpoint_of(handle.connection_config, base_url, self.sandbox_name, handle.namespace, pod_ip, port)

    async def close(self) -> None:
        await asyncio.to_thread(self.handle.close_connection)


class ThreadedClaims(TrackedClaims):
    """The sync `SandboxClient` (the only one with the kubectl tunnel), each call in a worker thread."""

    runtime_type: type[ThreadedRuntime] = ThreadedRuntime

    def __init__(self, config: KubernetesConfig, connection: SandboxConnectionConfig | None = None) -> None:
        super().__init__()
        self.config = config
        api = None
        if config.kubeconfig:
            api = kubernetes.config.new_client_from_config(config_file=config.kubeconfig)  # type: ignore[no-untyped-call]
        self.client: Any = SandboxClient(
            connection_config=connection or connection_config(config), cleanup=False, api_client=api
        )

    async def create(self, name: str, labels: dict[str, str], shutdown_after: int) -> Runtime:
        handle = await asyncio.to_thread(
            self.client.create_sandbox,
            self.config.warm_pool,
            namespace=self.config.namespace,
            sandbox_ready_timeout=_seconds(self.config.ready_timeout),
            labels=labels,
            claim_name=name,
            adopt_existing=True,
            shutdown_after_seconds=shutdown_after,
        )
        return self._track(name, self.runtime_type(handle))

    async def attach(self, claim: str) -> Runtime:
        get = self.client.get_sandbox
        handle = await asyncio.to_thread(
            get, claim, namespace=self.config.namespace, resolve_timeout=_seconds(self.config.api_timeout)
        )
        return self._track(claim, self.runtime_type(handle))

    async def _forget_closed(self) -> None:
        await asyncio.to_thread(self.client.list_active_sandboxes)  # listing is what prunes closed handles

    async def close(self) -> None:
        runtimes, self._runtimes = self._runtimes, {}
        for runtime in runtimes.values():
            await runtime.close()


def claims_for(config: KubernetesConfig, api: BoundedApiClient) -> Claims:
    if config.connection is ConnectionMode.TUNNEL:
        return ThreadedClaims(config)
    return AsyncClaims(config, api)
