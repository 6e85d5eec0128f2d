"""`kubernetes-agent-sandbox doctor` passes on a healthy imitation cluster and names each injected fault."""

from __future__ import annotations

import socket
import subprocess
import sys

import pytest

from langchain_kubernetes_agent_sandbox.cli.main import main
from langchain_kubernetes_agent_sandbox.testing import FakeCluster


def settings(cluster: FakeCluster, *extra: str) -> list[str]:
    return ["--kubeconfig", cluster.kubeconfig, "--warm-pool", cluster.pool, "--api-url", cluster.router_url, *extra]


def doctor(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str]:
    code = main(["doctor", *argv])
    return code, capsys.readouterr().out


def closed_port_url() -> str:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return f"http://127.0.0.1:{probe.getsockname()[1]}"


def test_doctor_passes_on_a_healthy_cluster_and_leaves_no_claim(fake_cluster: FakeCluster) -> None:
    argv = [sys.executable, "-m", "langchain_kubernetes_agent_sandbox.cli.main", "doctor", *settings(fake_cluster)]
    done = subprocess.run(argv, capture_output=True, text=True, timeout=120, check=False)
    assert done.returncode == 0, done.stdout + done.stderr
    lines = done.stdout.splitlines()
    for name in ("credentials", "custom resources", "rbac", "warm pool", "router", "test claim"):
        assert any(line.startswith(f"[ok  ] {name}:") for line in lines), done.stdout
    assert "All checks passed" in done.stdout
    assert fake_cluster.claims("langchain-kubernetes-agent-sandbox/doctor=true") == []


def test_missing_warm_pool_is_named_with_the_fix(fake_cluster: FakeCluster, capsys: pytest.CaptureFixture[str]) -> None:
    code, out = doctor(capsys, *settings(fake_cluster, "--warm-pool", "no-such-pool"))
    assert code == 1
    assert "[FAIL] warm pool: no SandboxWarmPool 'no-such-pool' in namespace 'default'" in out
    assert "fix: create it (deploy/sandbox-pool" in out
    assert "[skip] test claim: needs warm pool" in out


def test_api_server_down_is_named(fake_cluster: FakeCluster, capsys: pytest.CaptureFixture[str]) -> None:
    fake_cluster.set_faults(api_status=503)
    code, out = doctor(capsys, *settings(fake_cluster))
    assert code == 1
    assert "[FAIL] credentials: could not reach the Kubernetes API: HTTP 503" in out
    assert "fix: give --kubeconfig" in out
    assert "[skip] rbac: needs credentials" in out


def test_unreadable_kubeconfig_is_named(
    fake_cluster: FakeCluster, capsys: pytest.CaptureFixture[str], tmp_path: object
) -> None:
    code, out = doctor(capsys, *settings(fake_cluster, "--kubeconfig", "/nonexistent/kubeconfig"))
    assert code == 1
    assert "[FAIL] credentials: could not load credentials from /nonexistent/kubeconfig" in out


def test_denied_rbac_names_each_missing_verb(fake_cluster: FakeCluster, capsys: pytest.CaptureFixture[str]) -> None:
    fake_cluster.set_faults(rbac_denied=["delete sandboxclaims", "get sandboxes"])
    code, out = doctor(capsys, *settings(fake_cluster, "--no-claim"))
    assert code == 1
    assert (
        "[FAIL] rbac: denied: delete sandboxclaims.extensions.agents.x-k8s.io in namespace default; "
        "get sandboxes.agents.x-k8s.io in namespace default"
    ) in out
    assert "deploy/base/role.yaml" in out
    assert "[ok  ] warm pool:" in out


def test_missing_crds_are_named(fake_cluster: FakeCluster, capsys: pytest.CaptureFixture[str]) -> None:
    fake_cluster.set_faults(crds_missing=True)
    code, out = doctor(capsys, *settings(fake_cluster))
    assert code == 1
    assert "[FAIL] custom resources: not installed: sandboxclaims.extensions.agents.x-k8s.io/v1beta1" in out
    assert "fix: install agent-sandbox" in out


def test_router_down_is_named(fake_cluster: FakeCluster, capsys: pytest.CaptureFixture[str]) -> None:
    url = closed_port_url()
    code, out = doctor(capsys, *settings(fake_cluster, "--api-url", url, "--no-claim"))
    assert code == 1
    assert f"[FAIL] router: the router at {url} does not answer" in out
    assert "fix: check --api-url" in out


def test_router_failing_requests_fail_the_test_claim(
    fake_cluster: FakeCluster, capsys: pytest.CaptureFixture[str]
) -> None:
    fake_cluster.set_faults(router_status=502)
    code, out = doctor(capsys, *settings(fake_cluster))
    assert code == 1
    assert "[ok  ] router:" in out
    assert "[FAIL] test claim:" in out
    assert fake_cluster.claims("langchain-kubernetes-agent-sandbox/doctor=true") == []


def test_bad_settings_exit_2_with_the_reason(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["doctor", "--kubeconfig", "/dev/null"]) == 2
    assert "--warm-pool" in capsys.readouterr().err


GATEWAYS = "/apis/gateway.networking.k8s.io/v1/namespaces/default/gateways"


def test_gateway_mode_checks_the_gateway_address(fake_cluster: FakeCluster, capsys: pytest.CaptureFixture[str]) -> None:
    argv = ["--kubeconfig", fake_cluster.kubeconfig, "--warm-pool", fake_cluster.pool, "--connection", "gateway"]
    argv += ["--gateway-name", "sandbox-gateway", "--no-claim"]
    code, out = doctor(capsys, *argv)
    assert code == 1
    assert "[FAIL] gateway: no Gateway 'sandbox-gateway' in namespace 'default'" in out
    gateway = {"apiVersion": "gateway.networking.k8s.io/v1", "kind": "Gateway", "metadata": {"name": "sandbox-gateway"}}
    gateway["status"] = {"addresses": [{"type": "IPAddress", "value": "127.0.0.1"}]}
    created = fake_cluster.http.post(GATEWAYS, json=gateway)
    assert created.status_code == 201, created.text
    try:
        code, out = doctor(capsys, *argv)
        assert code == 0, out
        assert "[ok  ] gateway: Gateway 'sandbox-gateway' at 127.0.0.1" in out
    finally:
        fake_cluster.http.delete(f"{GATEWAYS}/sandbox-gateway")


def test_doctor_checks_that_each_suspend_pool_keeps_app_on_a_volume(
    fake_cluster: FakeCluster, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out = doctor(capsys, *settings(fake_cluster, "--suspend-pools", fake_cluster.pool, "--no-claim"))
    assert code == 0, out
    assert f"[ok  ] suspension: idle sessions are suspended on {fake_cluster.pool!r} (volume 'workspace')" in out
    template = f"/apis/extensions.agents.x-k8s.io/v1beta1/namespaces/{fake_cluster.namespace}/sandboxtemplates"
    fake_cluster.http.patch(
        f"{template}/python-runtime",
        json={"spec": {"volumeClaimTemplates": None}},
        headers={"Content-Type": "application/merge-patch+json"},
    ).raise_for_status()
    try:
        code, out = doctor(capsys, *settings(fake_cluster, "--suspend-pools", fake_cluster.pool, "--no-claim"))
    finally:
        fake_cluster.http.patch(
            f"{template}/python-runtime",
            json={"spec": {"volumeClaimTemplates": [{"metadata": {"name": "workspace"}}]}},
            headers={"Content-Type": "application/merge-patch+json"},
        ).raise_for_status()
    assert code != 0
    assert "[FAIL] suspension: SandboxTemplate 'python-runtime' of pool" in out
    assert "remove the pool from --suspend-pools" in out
