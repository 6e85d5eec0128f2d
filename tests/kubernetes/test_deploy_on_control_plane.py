"""deploy/ on the real control plane: the example installation applies (server-side dry run, then for real), the
server's service account can do its work with the Role and nothing more, and `doctor` names a verb the Role lacks.

One module-scoped installation in the namespace the manifests name; the tests run in order on it.
"""

from __future__ import annotations

import contextlib
import ssl
import subprocess
import sys
import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
import yaml
from mcp.shared.memory import create_connected_server_and_client_session

from langchain_kubernetes_agent_sandbox.server.config import ServerConfig
from langchain_kubernetes_agent_sandbox.server.runtime import running
from langchain_kubernetes_agent_sandbox.testing.control_plane import ControlPlane
from tests.control_plane import wait_for_pool
from tests.deploy.tools import DEPLOY, tool
from tests.server.mcp_calls import call

NAMESPACE = "kubernetes-agent-sandbox"
ACCOUNT = "kubernetes-agent-sandbox"
POOL = "python-pool"
ROLE = f"/apis/rbac.authorization.k8s.io/v1/namespaces/{NAMESPACE}/roles/kubernetes-agent-sandbox"


def kubectl(plane: ControlPlane, *args: str, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    argv = [tool("kubectl"), "--kubeconfig", plane.kubeconfig, *args]
    return subprocess.run(argv, input=stdin, capture_output=True, text=True, timeout=120, check=False)


@pytest.fixture(scope="module")
def installed(control_plane: ControlPlane) -> Iterator[dict[str, str]]:
    """deploy/overlays/example, applied as its README says; what `kubectl apply` printed, by step."""
    rendered = kubectl(control_plane, "kustomize", str(DEPLOY / "overlays" / "example"))
    assert rendered.returncode == 0, rendered.stderr
    namespace = next(doc for doc in yaml.safe_load_all(rendered.stdout) if doc and doc["kind"] == "Namespace")
    # A dry run cannot create the namespace that the other objects' dry runs need: it comes first.
    made = kubectl(control_plane, "apply", "--server-side", "-f", "-", stdin=yaml.safe_dump(namespace))
    assert made.returncode == 0, made.stderr
    dry = kubectl(control_plane, "apply", "--server-side", "--dry-run=server", "-f", "-", stdin=rendered.stdout)
    real = kubectl(control_plane, "apply", "--server-side", "-f", "-", stdin=rendered.stdout)
    try:
        yield {
            "dry-run": dry.stdout + dry.stderr,
            "dry-run-code": str(dry.returncode),
            "apply": real.stdout + real.stderr,
        }
    finally:
        control_plane.http.delete(f"/api/v1/namespaces/{NAMESPACE}")


def test_the_example_installation_passes_a_server_side_dry_run_and_applies(
    installed: dict[str, str], control_plane: ControlPlane
) -> None:
    assert installed["dry-run-code"] == "0", installed["dry-run"]
    assert (
        "sandboxtemplate.extensions.agents.x-k8s.io/python-runtime serverside-applied (server dry run)"
        in (installed["dry-run"])
    )
    assert "role.rbac.authorization.k8s.io/kubernetes-agent-sandbox serverside-applied" in installed["apply"]
    # The pool's pods run: the real controller made them from the project's template.
    wait_for_pool(control_plane, NAMESPACE, POOL)


def _settings(plane: ControlPlane, kubeconfig: str) -> dict[str, Any]:
    return {"warm_pool": POOL, "namespace": NAMESPACE, "api_url": plane.router_url, "kubeconfig": kubeconfig}


async def test_the_server_works_with_its_service_account_and_the_role_alone(
    installed: dict[str, str], control_plane: ControlPlane
) -> None:
    kubeconfig = control_plane.kubeconfig_for(NAMESPACE, ACCOUNT)
    config = ServerConfig(provider="kubernetes", principal="deployed", **_settings(control_plane, kubeconfig))
    async with running(config) as server, create_connected_server_and_client_session(server) as client:
        result = await call(client, "execute", command="echo through the role")
        assert result.structuredContent["stdout"] == "through the role\n"  # type: ignore[index]
        await call(client, "close_session", session_id=result.structuredContent["session_id"])  # type: ignore[index]
    # The real authorizer refuses what the Role does not grant.
    token = control_plane.token_for(NAMESPACE, ACCOUNT)
    trust = ssl.create_default_context(cafile=control_plane.ca_file)
    headers = {"Authorization": f"Bearer {token}"}
    async with httpx.AsyncClient(base_url=control_plane.api_url, verify=trust, headers=headers) as as_account:
        for forbidden in ("pods", "secrets", "sandboxwarmpools"):
            group = "apis/extensions.agents.x-k8s.io/v1beta1" if forbidden == "sandboxwarmpools" else "api/v1"
            answer = await as_account.get(f"/{group}/namespaces/{NAMESPACE}/{forbidden}")
            assert answer.status_code == 403, forbidden


def doctor(plane: ControlPlane, kubeconfig: str, *extra: str) -> subprocess.CompletedProcess[str]:
    settings = _settings(plane, kubeconfig)
    argv = [sys.executable, "-m", "langchain_kubernetes_agent_sandbox", "doctor"]
    for name in ("kubeconfig", "warm_pool", "namespace", "api_url"):
        argv += [f"--{name.replace('_', '-')}", str(settings[name])]
    return subprocess.run([*argv, *extra], capture_output=True, text=True, timeout=180, check=False)


@contextlib.contextmanager
def role_without(plane: ControlPlane, verb: str, *, resource: str | None = None) -> Iterator[None]:
    """The project's Role without `verb` (on `resource` only, if given) while the block runs."""
    original = plane.http.get(ROLE).raise_for_status().json()
    changed = {**original, "rules": [dict(rule) for rule in original["rules"]]}
    for rule in changed["rules"]:
        if resource is None or resource in rule["resources"]:
            rule["verbs"] = [v for v in rule["verbs"] if v != verb]
    plane.http.put(ROLE, json=changed).raise_for_status()
    try:
        yield
    finally:
        restored = plane.http.get(ROLE).json()
        restored["rules"] = original["rules"]
        plane.http.put(ROLE, json=restored).raise_for_status()


def test_doctor_passes_with_the_service_account_and_names_a_verb_the_role_lacks(
    installed: dict[str, str], control_plane: ControlPlane
) -> None:
    kubeconfig = control_plane.kubeconfig_for(NAMESPACE, ACCOUNT)
    healthy = doctor(control_plane, kubeconfig)
    assert healthy.returncode == 0, healthy.stdout + healthy.stderr
    # The Role grants no reads of warm pools, which the server never makes: doctor says so and goes on.
    assert "[skip] warm pool: this account may not read SandboxWarmPool 'python-pool'" in healthy.stdout
    assert "[ok  ] test claim:" in healthy.stdout
    with role_without(control_plane, "watch"):
        deadline = time.monotonic() + 10
        while (broken := doctor(control_plane, kubeconfig, "--no-claim")).returncode == 0:
            assert time.monotonic() < deadline, "the authorizer never saw the changed Role"
            time.sleep(0.5)
    assert broken.returncode == 1, broken.stdout + broken.stderr
    assert (
        f"[FAIL] rbac: denied: watch sandboxclaims.extensions.agents.x-k8s.io in namespace {NAMESPACE}"
    ) in broken.stdout


def test_doctor_names_the_pod_tunnel_rights_that_the_role_does_not_grant(
    installed: dict[str, str], control_plane: ControlPlane
) -> None:
    """The Role is for the router's path; sandboxd through the pod tunnel needs pods and their port-forward, which
    the real authorizer refuses and doctor names (a subresource in a SelfSubjectAccessReview)."""
    kubeconfig = control_plane.kubeconfig_for(NAMESPACE, ACCOUNT)
    argv = [sys.executable, "-m", "langchain_kubernetes_agent_sandbox", "doctor", "--kubeconfig", kubeconfig]
    argv += ["--warm-pool", POOL, "--namespace", NAMESPACE, "--runtime", "sandboxd", "--connection", "tunnel"]
    checked = subprocess.run([*argv, "--no-claim"], capture_output=True, text=True, timeout=180, check=False)
    assert checked.returncode == 1, checked.stdout + checked.stderr
    assert (
        f"[FAIL] rbac: denied: get pods in namespace {NAMESPACE}; create pods/portforward in namespace {NAMESPACE}"
    ) in checked.stdout


def test_doctor_names_the_patch_on_sandboxes_that_suspension_needs(
    installed: dict[str, str], control_plane: ControlPlane
) -> None:
    kubeconfig = control_plane.kubeconfig_for(NAMESPACE, ACCOUNT)
    with role_without(control_plane, "patch", resource="sandboxes"):
        deadline = time.monotonic() + 10
        while (broken := doctor(control_plane, kubeconfig, "--no-claim")).returncode == 0:
            assert time.monotonic() < deadline, "the authorizer never saw the changed Role"
            time.sleep(0.5)
    assert broken.returncode == 1, broken.stdout + broken.stderr
    assert f"[FAIL] rbac: denied: patch sandboxes.agents.x-k8s.io in namespace {NAMESPACE}" in broken.stdout
