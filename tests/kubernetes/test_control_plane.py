"""The real control plane itself: what the Kubernetes tests on it rely on."""

from __future__ import annotations

import ipaddress
import subprocess
import time

from k8s_agent_sandbox import SandboxClient
from k8s_agent_sandbox.models import SandboxDirectConnectionConfig

import kubernetes
from langchain_kubernetes_agent_sandbox.testing.control_plane import ControlPlane
from langchain_kubernetes_agent_sandbox.testing.pod_network import SUBNETS
from tests.control_plane import NAMESPACE, POOL

SANDBOXES = "/apis/agents.x-k8s.io/v1beta1/namespaces/{namespace}/sandboxes"
PODS = "/api/v1/namespaces/{namespace}/pods"


def _wait_gone(plane: ControlPlane, path: str, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while plane.http.get(path).status_code != 404:
        assert time.monotonic() < deadline, f"{path} still exists after {timeout:g} s"
        time.sleep(0.1)


def test_a_claim_runs_on_a_pod_of_its_own_through_the_real_router_and_goes_with_its_claim(
    control_plane: ControlPlane,
) -> None:
    api = kubernetes.config.new_client_from_config(control_plane.kubeconfig)
    connection = SandboxDirectConnectionConfig(api_url=control_plane.router_url)
    client = SandboxClient(connection_config=connection, api_client=api)
    sandbox = client.create_sandbox(POOL, namespace=NAMESPACE, sandbox_ready_timeout=60)
    try:
        result = sandbox.commands.run("echo hello from a pod")
        assert (result.exit_code, result.stdout) == (0, "hello from a pod\n")
        status = control_plane.http.get(f"{SANDBOXES.format(namespace=NAMESPACE)}/{sandbox.sandbox_id}").json()
        (pod_ip,) = status["status"]["podIPs"]
        assert ipaddress.ip_address(pod_ip) in SUBNETS
        pod = control_plane.http.get(f"{PODS.format(namespace=NAMESPACE)}/{sandbox.sandbox_id}").json()
        assert pod["status"]["phase"] == "Running"
        assert pod["status"]["podIP"] == pod_ip
    finally:
        sandbox.terminate()
    # The garbage collector deletes the Sandbox with its claim, then its Pod; the pod runner ends the process.
    _wait_gone(control_plane, f"{SANDBOXES.format(namespace=NAMESPACE)}/{sandbox.sandbox_id}")
    _wait_gone(control_plane, f"{PODS.format(namespace=NAMESPACE)}/{sandbox.sandbox_id}")
    every_netns = ["ip", "-all", "netns", "exec", "ip", "-o", "-4", "addr", "show"]
    assert f" {pod_ip}/" not in subprocess.run(every_netns, capture_output=True, text=True, check=True).stdout
