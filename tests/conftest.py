"""Fixtures shared by every test: providers, parametrised so each behaviour is checked on each provider."""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from pathlib import Path

import pytest

from langchain_kubernetes_agent_sandbox import ExecutionLimits, Sandbox, SandboxProvider
from langchain_kubernetes_agent_sandbox.providers.kubernetes import KubernetesConfig, KubernetesProvider
from langchain_kubernetes_agent_sandbox.providers.local import LocalProvider
from langchain_kubernetes_agent_sandbox.testing import FakeCluster
from langchain_kubernetes_agent_sandbox.testing.pytest_plugin import fake_cluster, fake_cluster_session  # noqa: F401

ProviderFactory = Callable[..., Awaitable[SandboxProvider]]
"""Makes a provider on the test's backing state; calling it again models a restart of the server."""


@contextlib.contextmanager
def reachable_tempdir(prefix: str) -> Iterator[Path]:
    """A temporary folder the sandbox user can enter (pytest's tmp_path lies under a 0700 folder)."""
    folder = Path(tempfile.mkdtemp(prefix=prefix, dir="/tmp"))
    folder.chmod(0o711)
    try:
        yield folder
    finally:
        shutil.rmtree(folder, ignore_errors=True)


@pytest.fixture
def local_state_dir() -> Iterator[Path]:
    with reachable_tempdir("kas-test-") as folder:
        yield folder


@pytest.fixture
async def local_provider_factory(local_state_dir: Path) -> AsyncIterator[ProviderFactory]:
    made: list[SandboxProvider] = []

    async def make(limits: ExecutionLimits | None = None, **options: object) -> SandboxProvider:
        provider = LocalProvider(local_state_dir, limits=limits, **options)  # type: ignore[arg-type]
        made.append(provider)
        return provider

    yield make
    for provider in made:
        for sandbox in await provider.list():
            await sandbox.terminate()
        await provider.aclose()


@pytest.fixture
async def kubernetes_provider_factory(fake_cluster: FakeCluster) -> AsyncIterator[ProviderFactory]:  # noqa: F811
    made: list[SandboxProvider] = []

    async def make(limits: ExecutionLimits | None = None) -> SandboxProvider:
        config = KubernetesConfig(
            warm_pool=fake_cluster.pool, api_url=fake_cluster.router_url, kubeconfig=fake_cluster.kubeconfig
        )
        provider = KubernetesProvider(config, limits=limits)
        made.append(provider)
        return provider

    yield make
    for provider in made:
        for sandbox in await provider.list():
            await sandbox.terminate()
        await provider.aclose()


PROVIDER_FACTORY_FIXTURES = {"local": "local_provider_factory", "kubernetes": "kubernetes_provider_factory"}
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
