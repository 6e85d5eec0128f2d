"""The standard deepagents sandbox suite on the Kubernetes provider, against the imitation cluster."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from langchain_kubernetes_agent_sandbox.adapter import ADAPTER_LIMITS, SandboxBackend
from langchain_kubernetes_agent_sandbox.providers.kubernetes import KubernetesConfig, KubernetesProvider
from langchain_kubernetes_agent_sandbox.testing import FakeCluster
from tests.adapter.sandbox_suite import StandardSandboxSuite


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
