"""`serve --provider kubernetes` hands every Kubernetes setting to the provider."""

from __future__ import annotations

from langchain_kubernetes_agent_sandbox.cli import doctor as doctor_command
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


def test_the_timeouts_of_the_cluster_side_are_settings_with_the_providers_defaults() -> None:
    environ = {
        "KUBERNETES_AGENT_SANDBOX_PROVIDER": "kubernetes",
        "KUBERNETES_AGENT_SANDBOX_WARM_POOL": "python-pool",
        "KUBERNETES_AGENT_SANDBOX_API_URL": "http://router",
        "KUBERNETES_AGENT_SANDBOX_ROUTER_TIMEOUT": "600",
    }
    tuned = make_provider(load({"ready_timeout": 45.0, "api_timeout": 5.0, "file_timeout": 60.0}, environ))
    assert isinstance(tuned, KubernetesProvider)
    config = tuned.config
    assert (config.proxy_timeout, config.ready_timeout, config.api_timeout, config.file_timeout) == (600, 45, 5, 60)
    assert config.router_limit == 600
    unset = {name: value for name, value in environ.items() if not name.endswith("ROUTER_TIMEOUT")}
    default = make_provider(load({}, unset))
    assert isinstance(default, KubernetesProvider)
    assert (default.config.proxy_timeout, default.config.ready_timeout) == (180, 180)
    assert doctor_command.kubernetes_config(load({}, environ)).ready_timeout == 120
    assert doctor_command.kubernetes_config(load({"ready_timeout": 300.0}, environ)).ready_timeout == 300
