"""The operator chooses sandboxd and how to reach it in the server's settings; impossible combinations are refused
with the reason and what to use instead."""

from __future__ import annotations

import pytest
from k8s_agent_sandbox.models import SandboxdInClusterConnectionConfig, SandboxdPodTunnelConnectionConfig

from langchain_kubernetes_agent_sandbox.providers.kubernetes import rbac
from langchain_kubernetes_agent_sandbox.providers.kubernetes.config import (
    ConnectionMode,
    KubernetesConfig,
    RuntimeKind,
    SandboxdAddress,
)
from langchain_kubernetes_agent_sandbox.providers.kubernetes.sandboxd_sandbox import connection_config
from langchain_kubernetes_agent_sandbox.server.config import ConfigError, load
from langchain_kubernetes_agent_sandbox.server.runtime import kubernetes_config


def _kubernetes(**environ: str) -> KubernetesConfig:
    variables = {f"KUBERNETES_AGENT_SANDBOX_{name.upper()}": value for name, value in environ.items()}
    return kubernetes_config(load({}, {"KUBERNETES_AGENT_SANDBOX_PROVIDER": "kubernetes", **variables}))


def test_sandboxd_in_cluster_reaches_the_pod_address_with_the_clients_config() -> None:
    config = _kubernetes(warm_pool="sandboxd-pool", runtime="sandboxd", connection="in-cluster")
    chosen = connection_config(config)
    assert isinstance(chosen, SandboxdInClusterConnectionConfig)
    assert (chosen.mode, chosen.rest_port, chosen.grpc_port) == ("in-cluster-pod-ip", 8080, 9090)
    assert config.router_limit is None  # no router: commands are not cut at 180 s


def test_the_service_address_and_ports_are_the_operators() -> None:
    config = _kubernetes(
        warm_pool="p",
        runtime="sandboxd",
        connection="in-cluster",
        sandboxd_address="service",
        sandboxd_rest_port="18080",
        sandboxd_grpc_port="19090",
    )
    chosen = connection_config(config)
    assert isinstance(chosen, SandboxdInClusterConnectionConfig)
    assert (chosen.mode, chosen.rest_port, chosen.grpc_port) == ("in-cluster-service", 18080, 19090)
    assert config.sandboxd_address is SandboxdAddress.SERVICE


def test_the_tunnel_is_the_pod_port_forward() -> None:
    config = _kubernetes(warm_pool="p", runtime="sandboxd", connection="tunnel")
    assert config.connection is ConnectionMode.TUNNEL
    assert isinstance(connection_config(config), SandboxdPodTunnelConnectionConfig)


@pytest.mark.parametrize("connection", ["direct", "gateway"])
def test_sandboxd_through_the_router_is_refused_with_the_reason(connection: str) -> None:
    with pytest.raises(ConfigError, match=r"HTTP/1 only.*in-cluster.*tunnel"):
        _kubernetes(warm_pool="p", runtime="sandboxd", connection=connection, api_url="http://r", gateway_name="g")


def test_one_port_for_both_of_sandboxds_services_is_refused() -> None:
    with pytest.raises(ConfigError, match="two different TCP ports"):
        _kubernetes(warm_pool="p", runtime="sandboxd", connection="in-cluster", sandboxd_rest_port="9090")


def test_the_reference_runtime_stays_the_default() -> None:
    assert _kubernetes(warm_pool="p", api_url="http://r").runtime is RuntimeKind.REFERENCE


def test_the_pod_tunnel_needs_the_pods_and_their_port_forward_in_the_sandboxes_namespace() -> None:
    config = _kubernetes(warm_pool="p", runtime="sandboxd", connection="tunnel", namespace="agents")
    wanted = {(a.group, a.resource, a.subresource, a.verbs, a.namespace) for a in rbac.required_access(config)}
    assert ("", "pods", "", ("get",), "agents") in wanted
    assert ("", "pods", "portforward", ("create",), "agents") in wanted
    in_cluster = _kubernetes(warm_pool="p", runtime="sandboxd", connection="in-cluster")
    assert all(a.resource != "pods" for a in rbac.required_access(in_cluster))
