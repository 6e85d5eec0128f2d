"""`serve --provider kubernetes` hands every Kubernetes setting to the provider."""

from __future__ import annotations

from langchain_kubernetes_agent_sandbox.providers.kubernetes import ConnectionMode, KubernetesProvider
from langchain_kubernetes_agent_sandbox.server.config import load
from langchain_kubernetes_agent_sandbox.server.runtime import make_provider


def test_flags_and_environment_reach_the_provider() -> None:
    environ = {
        "KUBERNETES_AGENT_SANDBOX_PROVIDER": "kubernetes",
        "KUBERNETES_AGENT_SANDBOX_WARM_POOL": "python-pool",
        "KUBERNETES_AGENT_SANDBOX_NAMESPACE": "agents",
    }
    flags = {
        "connection": "gateway",
        "gateway_name": "sandbox-gw",
        "gateway_namespace": "infra",
        "kubeconfig": "/etc/kas/kubeconfig",
        "max_lifetime": 7200.0,
    }
    provider = make_provider(load(flags, environ))
    assert isinstance(provider, KubernetesProvider)
    config = provider.config
    assert (config.warm_pool, config.namespace, config.connection) == ("python-pool", "agents", ConnectionMode.GATEWAY)
    assert (config.gateway_name, config.gateway_namespace) == ("sandbox-gw", "infra")
    assert config.kubeconfig == "/etc/kas/kubeconfig"
    assert config.max_lifetime == 7200.0
