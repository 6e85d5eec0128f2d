"""The kustomize base and overlays render with kubectl, validate against the Kubernetes schemas offline, and
grant exactly the access the provider uses."""

from __future__ import annotations

from typing import Any

import kubernetes_validate
import pytest

from langchain_kubernetes_agent_sandbox.cli.doctor import kubernetes_config
from langchain_kubernetes_agent_sandbox.providers.kubernetes import rbac
from langchain_kubernetes_agent_sandbox.providers.kubernetes.config import ConnectionMode, KubernetesConfig
from langchain_kubernetes_agent_sandbox.server.config import load
from tests.deploy.crd_fields import K8S_VERSION, pool_problems, template_problems
from tests.deploy.tools import find, render

FOLDERS = ["base", "sandbox-pool", "sandboxd-pool", "overlays/example", "overlays/gateway", "overlays/sandboxd"]
CRD_KINDS = {"SandboxTemplate", "SandboxWarmPool"}


@pytest.fixture(scope="module")
def rendered() -> dict[str, list[dict[str, Any]]]:
    return {folder: render(folder) for folder in FOLDERS}


@pytest.mark.parametrize("folder", FOLDERS)
def test_renders_and_validates_against_the_kubernetes_schemas(
    rendered: dict[str, list[dict[str, Any]]], folder: str
) -> None:
    objects = rendered[folder]
    assert objects
    for obj in objects:
        if obj["kind"] in CRD_KINDS:
            continue
        kubernetes_validate.validate(obj, K8S_VERSION, strict=True)


@pytest.mark.parametrize("folder", ["sandbox-pool", "overlays/example", "sandboxd-pool", "overlays/sandboxd"])
def test_sandbox_template_and_pool_use_only_fields_of_the_agent_sandbox_crds(
    rendered: dict[str, list[dict[str, Any]]], folder: str
) -> None:
    objects = rendered[folder]
    (template,) = find(objects, "SandboxTemplate")
    (pool,) = find(objects, "SandboxWarmPool")
    assert template_problems(template) == []
    assert pool_problems(pool) == []
    assert pool["spec"]["sandboxTemplateRef"]["name"] == template["metadata"]["name"]
    assert template["metadata"]["namespace"] == pool["metadata"]["namespace"]
    assert template["spec"]["podTemplate"]["spec"]["automountServiceAccountToken"] is False


def test_crd_check_catches_a_misspelt_field() -> None:
    bad = {"apiVersion": "extensions.agents.x-k8s.io/v1beta1", "kind": "SandboxWarmPool"}
    assert pool_problems({**bad, "spec": {"replica": 2, "sandboxTemplateRef": {"name": "t"}}}) == [
        "unknown spec field replica"
    ]
    template = {**bad, "kind": "SandboxTemplate", "spec": {"podTemplate": {"spec": {"containers": [{"nam": "x"}]}}}}
    assert template_problems(template)


def rules_of(role: dict[str, Any]) -> set[tuple[str, str, tuple[str, ...]]]:
    return {
        (group, resource, tuple(sorted(rule["verbs"])))
        for rule in role["rules"]
        for group in rule["apiGroups"]
        for resource in rule["resources"]
    }


def expected(connection: ConnectionMode, **settings: Any) -> set[tuple[str, str, tuple[str, ...]]]:
    config = KubernetesConfig(warm_pool="python-pool", connection=connection, **settings)
    return {(a.group, a.resource, tuple(sorted(a.verbs))) for a in rbac.required_access(config)}


def test_role_grants_exactly_what_the_provider_uses(rendered: dict[str, list[dict[str, Any]]]) -> None:
    (role,) = find(rendered["overlays/example"], "Role")
    assert rules_of(role) == expected(ConnectionMode.DIRECT, api_url="http://router:8080")
    assert {o["kind"] for o in rendered["overlays/example"]} >= {"Namespace", "ServiceAccount", "RoleBinding"}


def test_gateway_mode_adds_only_gateway_reads_in_the_gateway_namespace(
    rendered: dict[str, list[dict[str, Any]]],
) -> None:
    roles = find(rendered["overlays/gateway"], "Role")
    granted = set().union(*(rules_of(role) for role in roles))
    assert granted == expected(ConnectionMode.GATEWAY, gateway_name="g")
    (gateway_role,) = find(rendered["overlays/gateway"], "Role", "kubernetes-agent-sandbox-gateways")
    (binding,) = find(rendered["overlays/gateway"], "RoleBinding", "kubernetes-agent-sandbox-gateways")
    assert binding["metadata"]["namespace"] == gateway_role["metadata"]["namespace"] == "agent-sandbox-gateway"
    env = env_of(deployment(rendered["overlays/gateway"]))
    assert env["KUBERNETES_AGENT_SANDBOX_CONNECTION"] == "gateway"
    assert "KUBERNETES_AGENT_SANDBOX_API_URL" not in env


def deployment(objects: list[dict[str, Any]]) -> dict[str, Any]:
    (found,) = find(objects, "Deployment", "kubernetes-agent-sandbox")
    return found


def env_of(deploy: dict[str, Any]) -> dict[str, str]:
    container = deploy["spec"]["template"]["spec"]["containers"][0]
    return {item["name"]: item.get("value", "<from>") for item in container["env"]}


def test_deployment_is_hardened_and_probed(rendered: dict[str, list[dict[str, Any]]]) -> None:
    deploy = deployment(rendered["overlays/example"])
    pod = deploy["spec"]["template"]["spec"]
    (container,) = pod["containers"]
    assert deploy["spec"]["replicas"] == 2
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert pod["automountServiceAccountToken"] is True
    (account,) = find(rendered["overlays/example"], "ServiceAccount")
    assert account["automountServiceAccountToken"] is False
    security = container["securityContext"]
    assert security["readOnlyRootFilesystem"] is True
    assert security["allowPrivilegeEscalation"] is False
    assert security["capabilities"]["drop"] == ["ALL"]
    assert container["livenessProbe"]["httpGet"]["path"] == "/healthz"
    assert container["readinessProbe"]["httpGet"]["path"] == "/readyz"
    assert {"cpu", "memory"} <= set(container["resources"]["requests"]) & set(container["resources"]["limits"])
    assert container["image"] == "registry.example.com/agents/kubernetes-agent-sandbox:0.3.0"
    env = env_of(deploy)
    assert env["KUBERNETES_AGENT_SANDBOX_STATELESS"] == "true"
    assert env["KUBERNETES_AGENT_SANDBOX_PROVIDER"] == "kubernetes"
    assert not any("TOKEN" in name for name in env), "tokens come from the Secret's file, never the manifest"


def test_tokens_come_from_a_secret_that_is_not_in_the_manifests(rendered: dict[str, list[dict[str, Any]]]) -> None:
    objects = rendered["overlays/example"]
    assert find(objects, "Secret") == []
    pod = deployment(objects)["spec"]["template"]["spec"]
    volumes = {v["name"]: v for v in pod["volumes"]}
    assert volumes["tokens"]["secret"]["secretName"] == "kubernetes-agent-sandbox-tokens"
    assert "--token-file" in pod["containers"][0]["args"]


def test_network_policy_admits_chosen_clients_and_reaches_api_dns_and_router(
    rendered: dict[str, list[dict[str, Any]]],
) -> None:
    (policy,) = find(rendered["overlays/example"], "NetworkPolicy")
    spec = policy["spec"]
    assert set(spec["policyTypes"]) == {"Ingress", "Egress"}
    ports = {port["port"] for rule in spec["egress"] for port in rule["ports"]}
    assert {53, 443, 6443, 8080} <= ports
    router = [peer for rule in spec["egress"] for peer in rule["to"] if "podSelector" in peer]
    assert {"app": "sandbox-router"} in [peer["podSelector"]["matchLabels"] for peer in router]
    service = find(rendered["overlays/example"], "Service")[0]
    assert service["spec"]["selector"] == policy["spec"]["podSelector"]["matchLabels"]


@pytest.mark.parametrize("folder", ["overlays/example", "overlays/gateway"])
def test_deployment_settings_are_ones_the_server_accepts(
    rendered: dict[str, list[dict[str, Any]]], folder: str
) -> None:
    deploy = deployment(rendered[folder])
    environ = {name: ("agents" if value == "<from>" else value) for name, value in env_of(deploy).items()}
    args = deploy["spec"]["template"]["spec"]["containers"][0]["args"]
    assert args[0] == "serve"
    config = load({"token_file": args[args.index("--token-file") + 1]}, environ)
    assert config.transport == "http"
    assert config.provider == "kubernetes"
    assert config.port == deploy["spec"]["template"]["spec"]["containers"][0]["ports"][0]["containerPort"]
    assert kubernetes_config(config).namespace == "agents"


def test_the_sandboxd_overlay_serves_its_pool_in_cluster_and_opens_exactly_sandboxds_ports(
    rendered: dict[str, list[dict[str, Any]]],
) -> None:
    objects = rendered["overlays/sandboxd"]
    env = env_of(deployment(objects))
    (pool,) = find(objects, "SandboxWarmPool")
    (template,) = find(objects, "SandboxTemplate")
    assert env["KUBERNETES_AGENT_SANDBOX_RUNTIME"] == "sandboxd"
    assert env["KUBERNETES_AGENT_SANDBOX_CONNECTION"] == "in-cluster"
    assert env["KUBERNETES_AGENT_SANDBOX_WARM_POOL"] == pool["metadata"]["name"]
    assert "KUBERNETES_AGENT_SANDBOX_API_URL" not in env
    roles = find(objects, "Role")
    assert set().union(*(rules_of(role) for role in roles)) == expected(ConnectionMode.IN_CLUSTER)
    server_labels = deployment(objects)["spec"]["template"]["metadata"]["labels"]
    pod_labels = template["spec"]["podTemplate"]["metadata"]["labels"]
    (egress,) = find(objects, "NetworkPolicy", "kubernetes-agent-sandbox-sandboxd")
    (rule,) = egress["spec"]["egress"]
    assert rule["to"][0]["podSelector"]["matchLabels"].items() <= pod_labels.items()
    assert sorted(port["port"] for port in rule["ports"]) == [8080, 9090]
    (ingress,) = template["spec"]["networkPolicy"]["ingress"]
    assert ingress["from"][0]["podSelector"]["matchLabels"].items() <= server_labels.items()
    assert sorted(port["port"] for port in ingress["ports"]) == [8080, 9090]
