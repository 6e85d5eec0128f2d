"""The real control plane itself: what the Kubernetes tests on it rely on."""

from __future__ import annotations

import ipaddress
import json
import subprocess
import sys
import time

import httpx
import pytest
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


SANDBOXD_PROBE = """
import json, sys, urllib.request
base = "http://127.0.0.1:8080"
put = urllib.request.Request(base + "/v1/files/notes%2Fa.txt", data=b"from the host", method="PUT")
urllib.request.urlopen(put, timeout=5).read()
health = json.load(urllib.request.urlopen(base + "/v1/health", timeout=5))
print(json.dumps({"health": health, "read": urllib.request.urlopen(base + "/v1/files/notes%2Fa.txt").read().decode()}))
"""


def test_a_sandbox_on_sandboxd_runs_the_real_sandboxd_in_its_pod(control_plane: ControlPlane) -> None:
    name = "sandboxd-probe"
    sandbox = {
        "apiVersion": "agents.x-k8s.io/v1beta1",
        "kind": "Sandbox",
        "metadata": {"name": name, "namespace": NAMESPACE},
        "spec": {
            "podTemplate": {
                "spec": {
                    "containers": [
                        {
                            "name": "sandboxd",
                            "image": "sandboxd:v0.5.6",
                            "ports": [{"containerPort": 8080}, {"containerPort": 9090}],
                        }
                    ]
                }
            }
        },
    }
    path = f"{SANDBOXES.format(namespace=NAMESPACE)}/{name}"
    control_plane.apply(sandbox)
    try:
        deadline = time.monotonic() + 30
        while True:
            conditions = control_plane.http.get(path).json().get("status", {}).get("conditions") or []
            if any(c["type"] == "Ready" and c["status"] == "True" for c in conditions):
                break
            assert time.monotonic() < deadline, conditions
            time.sleep(0.2)
        netns = control_plane.pod_netns(NAMESPACE, name)
        inside = ["ip", "netns", "exec", netns, sys.executable, "-c", SANDBOXD_PROBE]
        done = subprocess.run(inside, capture_output=True, text=True, timeout=30, check=False)
        assert done.returncode == 0, done.stderr
        answer = json.loads(done.stdout)
        assert answer["read"] == "from the host"
        assert answer["health"]
        # sandboxd v0.5.6 listens on the pod's loopback only: from the pod network it is not reachable.
        pod_ip = control_plane.http.get(path).json()["status"]["podIPs"][0]
        with pytest.raises(httpx.ConnectError):
            httpx.get(f"http://{pod_ip}:8080/v1/health", timeout=2)
    finally:
        control_plane.http.delete(path)
    _wait_gone(control_plane, f"{PODS.format(namespace=NAMESPACE)}/{name}")
