"""Fixtures shared by every test: providers, parametrised so each behaviour is checked on each provider."""

from __future__ import annotations

import asyncio
import contextlib
import os
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from langchain_kubernetes_agent_sandbox import ExecutionLimits, Sandbox, SandboxProvider
from langchain_kubernetes_agent_sandbox.providers.kubernetes import KubernetesConfig, KubernetesProvider
from langchain_kubernetes_agent_sandbox.providers.kubernetes.config import ConnectionMode, RuntimeKind
from langchain_kubernetes_agent_sandbox.providers.local import LocalProvider
from langchain_kubernetes_agent_sandbox.providers.local.state import temporary_state
from langchain_kubernetes_agent_sandbox.testing import FakeCluster
from langchain_kubernetes_agent_sandbox.testing.control_plane import ControlPlane
from langchain_kubernetes_agent_sandbox.testing.pods import DEFAULT_RUNTIME_COMMAND

pytest.register_assert_rewrite("tests.control_plane")  # a plugin (below) that this file also imports from
from tests.control_plane import NAMESPACE as REAL_NAMESPACE  # noqa: E402
from tests.control_plane import POOL as REAL_POOL  # noqa: E402
from tests.control_plane import RealPool  # noqa: E402

pytest_plugins = ["langchain_kubernetes_agent_sandbox.testing.pytest_plugin", "tests.control_plane"]

ProviderFactory = Callable[..., Awaitable[SandboxProvider]]
"""Makes a provider on the test's backing state; calling it again models a restart of the server."""


@pytest.fixture
async def local_state_dir() -> AsyncIterator[Path]:
    """A state folder; every sandbox left in it is terminated at the end (its processes, cgroups and disk mount),
    and `temporary_state` then discards the rest (the folders whose record a test deleted)."""
    with temporary_state("kas-test-") as folder:
        yield folder
        if (folder / "sandboxes").is_dir():
            for left in await LocalProvider(folder, use_cgroups=True).list():
                await left.terminate()


@contextlib.asynccontextmanager
async def tracked(build: Callable[..., SandboxProvider]) -> AsyncIterator[ProviderFactory]:
    """A factory of providers made by `build`; every sandbox they hold is removed when the test ends."""
    made: list[SandboxProvider] = []

    async def make(*args: object, **kwargs: object) -> SandboxProvider:
        provider = build(*args, **kwargs)
        made.append(provider)
        return provider

    yield make
    for provider in made:
        for sandbox in await provider.list():
            await sandbox.terminate()
        await provider.aclose()


@pytest.fixture
async def local_provider_factory(local_state_dir: Path) -> AsyncIterator[ProviderFactory]:
    def build(limits: ExecutionLimits | None = None, **options: Any) -> SandboxProvider:
        return LocalProvider(local_state_dir, limits=limits, **options)

    async with tracked(build) as make:
        yield make


@contextlib.asynccontextmanager
async def kubernetes_factory(cluster: FakeCluster, **options: Any) -> AsyncIterator[ProviderFactory]:
    def build(limits: ExecutionLimits | None = None) -> SandboxProvider:
        config = KubernetesConfig(
            warm_pool=cluster.pool, api_url=cluster.router_url, kubeconfig=cluster.kubeconfig, **options
        )
        return KubernetesProvider(config, limits=limits)

    async with tracked(build) as make:
        yield make


@pytest.fixture
async def kubernetes_provider_factory(fake_cluster: FakeCluster) -> AsyncIterator[ProviderFactory]:
    """Pods reached through their agent's port, the execution engine's native channel."""
    async with kubernetes_factory(fake_cluster) as make:
        yield make


@pytest.fixture(scope="session")
def fake_cluster_without_background() -> Iterator[FakeCluster]:
    """An imitation cluster whose runtime ends every process a request started when it returns."""
    command = (*DEFAULT_RUNTIME_COMMAND, "--no-background")
    with FakeCluster({"python-pool": 2}, runtime_command=command) as cluster:
        yield cluster


@pytest.fixture
async def kubernetes_no_background_provider_factory(
    fake_cluster_without_background: FakeCluster,
) -> AsyncIterator[ProviderFactory]:
    """Pods that keep nothing running between requests: no agent, one-shot commands, no jobs."""
    async with kubernetes_factory(fake_cluster_without_background) as make:
        yield make


@pytest.fixture
async def kubernetes_oneshot_provider_factory(fake_cluster: FakeCluster) -> AsyncIterator[ProviderFactory]:
    """Pods reached through one-shot `/execute` requests only: the fallback for runtimes that cannot host an agent."""
    async with kubernetes_factory(fake_cluster, agent_port=None) as make:
        yield make


@contextlib.asynccontextmanager
async def impatient_provider(
    cluster: FakeCluster, *, patience: float, **options: Any
) -> AsyncIterator[KubernetesProvider]:
    """A Kubernetes provider on the imitation that gives up within seconds (claims and file calls after
    `patience`, API calls a second sooner), so fault tests end quickly; no sandbox or fault outlives it. It starts
    once the warm pool is full again, so that a claim within `patience` measures the fault, not a pod's cold start
    after the claims of the tests before."""
    await asyncio.to_thread(cluster.wait_for_pool)
    config = KubernetesConfig(
        warm_pool=cluster.pool,
        api_url=cluster.router_url,
        kubeconfig=cluster.kubeconfig,
        ready_timeout=patience,
        api_timeout=patience - 1,
        file_timeout=patience,
        timeout_margin=2,
        **options,
    )
    made = KubernetesProvider(config)
    try:
        yield made
    finally:
        cluster.clear_faults()
        for sandbox in await made.list():
            await sandbox.terminate()
        await made.aclose()


@pytest.fixture
async def real_kubernetes_provider_factory(control_plane: ControlPlane) -> AsyncIterator[ProviderFactory]:
    """The Kubernetes provider on the real control plane (`tests/control_plane.py`)."""

    def build(limits: ExecutionLimits | None = None) -> SandboxProvider:
        config = KubernetesConfig(
            warm_pool=REAL_POOL,
            namespace=REAL_NAMESPACE,
            api_url=control_plane.router_url,
            kubeconfig=control_plane.kubeconfig,
        )
        return KubernetesProvider(config, limits=limits)

    async with tracked(build) as make:
        yield make


@pytest.fixture
async def real_sandboxd_provider_factory(sandboxd_pool: RealPool) -> AsyncIterator[ProviderFactory]:
    """The Kubernetes provider on the real control plane's sandboxd pool, in-cluster by pod address."""

    async with sandboxd_factory(sandboxd_pool, ConnectionMode.IN_CLUSTER) as make:
        yield make


@pytest.fixture
async def real_sandboxd_tunnel_provider_factory(sandboxd_pool: RealPool) -> AsyncIterator[ProviderFactory]:
    """The same pool through the pod tunnel: `kubectl port-forward` to each pod, through the real API server to the
    control plane's kubelet endpoint, which connects to sandboxd on the pod's loopback."""
    async with sandboxd_factory(sandboxd_pool, ConnectionMode.TUNNEL) as make:
        yield make


@contextlib.asynccontextmanager
async def sandboxd_factory(pool: RealPool, connection: ConnectionMode) -> AsyncIterator[ProviderFactory]:
    def build(limits: ExecutionLimits | None = None) -> SandboxProvider:
        config = KubernetesConfig(
            warm_pool=pool.pool,
            namespace=pool.namespace,
            connection=connection,
            runtime=RuntimeKind.SANDBOXD,
            kubeconfig=pool.kubeconfig,
        )
        return KubernetesProvider(config, limits=limits)

    async with tracked(build) as make:
        yield make


PROVIDER_FACTORY_FIXTURES = {
    "local": "local_provider_factory",
    "kubernetes": "kubernetes_provider_factory",
    "kubernetes-oneshot": "kubernetes_oneshot_provider_factory",
    "kubernetes-no-background": "kubernetes_no_background_provider_factory",
    "kubernetes-real": "real_kubernetes_provider_factory",
    "kubernetes-sandboxd": "real_sandboxd_provider_factory",
    "kubernetes-sandboxd-tunnel": "real_sandboxd_tunnel_provider_factory",
}
"""Provider name -> the fixture that makes it; each contract test runs once per entry."""


@pytest.fixture(params=sorted(PROVIDER_FACTORY_FIXTURES))
def provider_factory(request: pytest.FixtureRequest) -> ProviderFactory:
    factory: ProviderFactory = request.getfixturevalue(PROVIDER_FACTORY_FIXTURES[request.param])
    return factory


@pytest.fixture
async def provider(provider_factory: ProviderFactory) -> SandboxProvider:
    return await provider_factory()


@pytest.fixture
async def sandbox(provider: SandboxProvider) -> AsyncIterator[Sandbox]:
    created = await provider.create(labels={"test": "contract"})
    yield created
    await created.terminate()


@pytest.fixture(autouse=True)
def _no_leaked_server_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    """A secret in the server's environment, which no sandbox may ever see."""
    monkeypatch.setitem(os.environ, "KAS_TEST_SERVER_SECRET", "server-secret-value")
