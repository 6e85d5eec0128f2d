"""The network profiles in deploy/sandbox-egress: the default pool opens no connection, the egress pool reaches DNS
and the allow-list proxy only, and the proxy takes connections from that pool only and reaches no cluster range.
Rendered with kubectl, validated against the Kubernetes schemas offline, the CRDs field by field."""

from __future__ import annotations

import argparse
import ipaddress
from typing import Any

import kubernetes_validate
import pytest

from langchain_kubernetes_agent_sandbox.cli.main import build_parser
from langchain_kubernetes_agent_sandbox.network.settings import operator_policy
from langchain_kubernetes_agent_sandbox.server.config import load
from tests.deploy.crd_fields import K8S_VERSION, pool_problems, template_problems
from tests.deploy.tools import find, render

PROXY_LABELS = {"app.kubernetes.io/name": "kubernetes-agent-sandbox-egress"}


@pytest.fixture(scope="module")
def objects() -> list[dict[str, Any]]:
    return render("sandbox-egress")


def template(objects: list[dict[str, Any]], name: str) -> dict[str, Any]:
    (found,) = find(objects, "SandboxTemplate", name)
    return found


def as_network_policy(spec: dict[str, Any]) -> dict[str, Any]:
    """A template's networkPolicy as the NetworkPolicy agent-sandbox makes of it, for the schema check."""
    return {
        "apiVersion": "networking.k8s.io/v1",
        "kind": "NetworkPolicy",
        "metadata": {"name": "check"},
        "spec": {"podSelector": {}, "policyTypes": ["Ingress", "Egress"], **spec},
    }


def test_renders_and_validates(objects: list[dict[str, Any]]) -> None:
    for obj in objects:
        if obj["kind"] == "SandboxTemplate":
            assert template_problems(obj) == []
            kubernetes_validate.validate(as_network_policy(obj["spec"]["networkPolicy"]), K8S_VERSION, strict=True)
        elif obj["kind"] == "SandboxWarmPool":
            assert pool_problems(obj) == []
            template(objects, obj["spec"]["sandboxTemplateRef"]["name"])
        else:
            kubernetes_validate.validate(obj, K8S_VERSION, strict=True)
    assert {o["kind"] for o in objects} >= {"Deployment", "Service", "NetworkPolicy"}


def test_sandboxes_without_network_open_no_connection(objects: list[dict[str, Any]]) -> None:
    policy = template(objects, "python-runtime")["spec"]["networkPolicy"]
    assert policy["egress"] == []
    (ingress,) = policy["ingress"]
    assert [peer["podSelector"]["matchLabels"] for peer in ingress["from"]] == [{"app": "sandbox-router"}]


def test_sandboxes_with_network_reach_dns_and_the_proxy_only(objects: list[dict[str, Any]]) -> None:
    egress = template(objects, "python-runtime-egress")
    peers = [
        (peer["podSelector"]["matchLabels"], sorted(port["port"] for port in rule["ports"]))
        for rule in egress["spec"]["networkPolicy"]["egress"]
        for peer in rule["to"]
    ]
    assert peers == [({"k8s-app": "kube-dns"}, [53, 53]), (PROXY_LABELS, [3128])]
    (service,) = find(objects, "Service", "kubernetes-agent-sandbox-egress")
    assert service["spec"]["selector"] == PROXY_LABELS
    env = {item["name"]: item["value"] for item in egress["spec"]["podTemplate"]["spec"]["containers"][0]["env"]}
    url = f"http://{service['metadata']['name']}:{service['spec']['ports'][0]['port']}"
    assert {env[name] for name in ("HTTP_PROXY", "HTTPS_PROXY", "http_proxy", "https_proxy")} == {url}


def test_the_proxy_admits_the_egress_pool_only_and_reaches_no_cluster_range(objects: list[dict[str, Any]]) -> None:
    (policy,) = find(objects, "NetworkPolicy", "kubernetes-agent-sandbox-egress")
    assert policy["spec"]["podSelector"]["matchLabels"] == PROXY_LABELS
    (ingress,) = policy["spec"]["ingress"]
    pod_labels = template(objects, "python-runtime-egress")["spec"]["podTemplate"]["metadata"]["labels"]
    assert [peer["podSelector"]["matchLabels"] for peer in ingress["from"]] == [pod_labels]
    blocks = [peer["ipBlock"] for rule in policy["spec"]["egress"] for peer in rule["to"] if "ipBlock" in peer]
    (public,) = blocks
    excluded = [ipaddress.ip_network(cidr) for cidr in public["except"]]
    for address in ("10.1.2.3", "172.20.0.1", "192.168.0.1", "169.254.169.254", "100.64.0.1", "127.0.0.1"):
        assert any(ipaddress.ip_address(address) in network for network in excluded), address


def test_the_proxy_runs_with_settings_its_command_accepts(objects: list[dict[str, Any]]) -> None:
    (deployment,) = find(objects, "Deployment", "kubernetes-agent-sandbox-egress")
    container = deployment["spec"]["template"]["spec"]["containers"][0]
    args: argparse.Namespace = build_parser().parse_args(container["args"])
    assert args.command == "egress-proxy"
    assert args.listen.endswith(f":{container['ports'][0]['containerPort']}")
    config = load({}, {item["name"]: item["value"] for item in container["env"]})
    policy = operator_policy(config.egress_allow, config.egress_ports, config.egress_private)
    assert policy is not None
    assert policy.refusal("mirror.pkgs.example.test", 443) is None
    assert policy.refusal("elsewhere.example.test", 443) == "name not allowed"
