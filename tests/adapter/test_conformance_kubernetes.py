"""The standard deepagents sandbox suite on the Kubernetes provider, on the imitation cluster and on the real control
plane (python-runtime and sandboxd pods)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from langchain_kubernetes_agent_sandbox.adapter import ADAPTER_LIMITS, SandboxBackend
from langchain_kubernetes_agent_sandbox.providers.kubernetes import KubernetesConfig, KubernetesProvider
from langchain_kubernetes_agent_sandbox.providers.kubernetes.config import ConnectionMode, RuntimeKind
from langchain_kubernetes_agent_sandbox.testing import FakeCluster
from langchain_kubernetes_agent_sandbox.testing.control_plane import ControlPlane
from tests.adapter.sandbox_suite import StandardSandboxSuite
from tests.control_plane import NAMESPACE, POOL, RealPool


class TestKubernetesBackendConformance(StandardSandboxSuite):
    @property
    def sandbox_root_dir(self) -> str:
        """Under /app, which the runtime's file API serves: the suite's 10 MiB files through /tmp would cross the
        shell in 48 KiB chunks (about 30 s each on the imitation), and the path rules are tested elsewhere."""
        return "/app/test_sandbox_ops/"

    @pytest.fixture(scope="class")
    def sandbox(self, fake_cluster_session: FakeCluster) -> Iterator[SandboxBackend]:
        config = KubernetesConfig(
            warm_pool=fake_cluster_session.pool,
            api_url=fake_cluster_session.router_url,
            kubeconfig=fake_cluster_session.kubeconfig,
        )
        provider = KubernetesProvider(config, limits=ADAPTER_LIMITS)
        with SandboxBackend.open(provider, close_provider=True) as backend:
            yield backend


class TestRealKubernetesBackendConformance(TestKubernetesBackendConformance):
    """The same suite on the real control plane (`tests/control_plane.py`)."""

    @pytest.fixture(scope="class")
    def sandbox(self, control_plane: ControlPlane) -> Iterator[SandboxBackend]:
        config = KubernetesConfig(
            warm_pool=POOL, namespace=NAMESPACE, api_url=control_plane.router_url, kubeconfig=control_plane.kubeconfig
        )
        provider = KubernetesProvider(config, limits=ADAPTER_LIMITS)
        with SandboxBackend.open(provider, close_provider=True) as backend:
            yield backend


class TestSandboxdBackendConformance(TestKubernetesBackendConformance):
    """The same suite on the real control plane's sandboxd pods, in-cluster by pod address."""

    @pytest.fixture(scope="class")
    def sandbox(self, sandboxd_pool: RealPool) -> Iterator[SandboxBackend]:
        config = KubernetesConfig(
            warm_pool=sandboxd_pool.pool,
            namespace=sandboxd_pool.namespace,
            connection=ConnectionMode.IN_CLUSTER,
            runtime=RuntimeKind.SANDBOXD,
            kubeconfig=sandboxd_pool.kubeconfig,
        )
        provider = KubernetesProvider(config, limits=ADAPTER_LIMITS)
        with SandboxBackend.open(provider, close_provider=True) as backend:
            yield backend
