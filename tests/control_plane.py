"""Fixtures for the real control plane (`tests/controlplane`, built by the session that first needs it).

`control_plane` is session-scoped: the build is cached across sessions, and starting takes seconds. It serves
the project's own warm pool (deploy/sandbox-pool) in the namespace `default`.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml

from langchain_kubernetes_agent_sandbox.testing.control_plane import ControlPlane
from langchain_kubernetes_agent_sandbox.testing.go_build import GoMissingError, build_control_plane
from langchain_kubernetes_agent_sandbox.testing.pod_network import PodNetworkError

ROOT = Path(__file__).resolve().parent.parent
CONTROL_PLANE_SOURCE = ROOT / "tests" / "controlplane"
POOL_MANIFESTS = ROOT / "deploy" / "sandbox-pool"
POOL = "python-pool"
SANDBOXD_POOL_MANIFESTS = ROOT / "deploy" / "sandboxd-pool"
SANDBOXD_POOL = "sandboxd-pool"
KEPT_POOL = "python-pool-kept"
"""A pool like POOL whose template keeps /app on a PersistentVolumeClaim: its sandboxes can be suspended."""
NAMESPACE = "default"


def _say(config: pytest.Config, line: str) -> None:
    """Print past pytest's capture: how long a build took belongs in the session's output."""
    capture = config.pluginmanager.getplugin("capturemanager")
    reporter = config.pluginmanager.getplugin("terminalreporter")
    if capture is None or reporter is None:
        print(line)
        return
    with capture.global_and_fixture_disabled():
        reporter.write_line(line)


def pool_manifests(namespace: str, folder: Path = POOL_MANIFESTS) -> list[dict[str, Any]]:
    """The project's SandboxTemplate and warm pool, as deploy/sandbox-pool (or `folder`) has them, in `namespace`."""
    manifests = []
    for name in ("sandboxtemplate.yaml", "sandboxwarmpool.yaml"):
        manifest = yaml.safe_load((folder / name).read_text())
        manifest["metadata"]["namespace"] = namespace
        manifests.append(manifest)
    return manifests


def kept_pool_manifests(namespace: str) -> list[dict[str, Any]]:
    """The project's template and pool with /app on a volumeClaimTemplate `workspace`, named for KEPT_POOL."""
    template, pool = pool_manifests(namespace)
    template["metadata"]["name"] = "python-runtime-kept"
    template["spec"]["volumeClaimTemplates"] = [
        {
            "metadata": {"name": "workspace"},
            "spec": {"accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": "1Gi"}}},
        }
    ]
    for container in template["spec"]["podTemplate"]["spec"]["containers"]:
        container["volumeMounts"] = [{"name": "workspace", "mountPath": "/app"}]
    pool["metadata"]["name"] = KEPT_POOL
    pool["spec"]["replicas"] = 1
    pool["spec"]["sandboxTemplateRef"]["name"] = "python-runtime-kept"
    return [template, pool]


def wait_for_pool(plane: ControlPlane, namespace: str, pool: str, timeout: float = 120.0) -> None:
    path = f"/apis/extensions.agents.x-k8s.io/v1beta1/namespaces/{namespace}/sandboxwarmpools/{pool}"
    deadline = time.monotonic() + timeout
    while True:
        status = plane.http.get(path).raise_for_status().json().get("status", {})
        wanted = plane.http.get(path).json()["spec"]["replicas"]
        if status.get("readyReplicas", 0) >= wanted:
            return
        if time.monotonic() > deadline:
            raise TimeoutError(f"warm pool {pool} not ready within {timeout:g} s: {status}")
        time.sleep(0.2)


@pytest.fixture(scope="session")
def control_plane(request: pytest.FixtureRequest) -> Iterator[ControlPlane]:
    try:
        binaries = build_control_plane(CONTROL_PLANE_SOURCE, report=lambda line: _say(request.config, line))
    except GoMissingError as missing:
        pytest.skip(str(missing))
    started = time.monotonic()
    try:
        plane = ControlPlane(binaries).start()
    except PodNetworkError as unable:
        pytest.skip(str(unable))
    try:
        for manifest in pool_manifests(NAMESPACE):
            plane.apply(manifest)
        try:
            wait_for_pool(plane, NAMESPACE, POOL)
        except TimeoutError as late:
            raise TimeoutError(f"{late}\n{plane.diagnostics()}") from None
        _say(request.config, f"control plane started, warm pool ready, in {time.monotonic() - started:.1f} s")
        yield plane
    finally:
        plane.stop()


@dataclass(frozen=True)
class RealPool:
    """The control plane's warm pool, named as tests name the imitation's (`pool`, `router_url`, `kubeconfig`)."""

    plane: ControlPlane
    pool: str = POOL
    namespace: str = NAMESPACE
    runtime: str = "reference"
    """What the pool's pods run: `reference` (python-runtime, behind the router) or `sandboxd`."""

    @property
    def router_url(self) -> str:
        return self.plane.router_url

    @property
    def kubeconfig(self) -> str:
        return self.plane.kubeconfig

    def claims(self) -> list[dict[str, Any]]:
        """The SandboxClaims in the pool's namespace, as the API serves them."""
        path = f"/apis/extensions.agents.x-k8s.io/v1beta1/namespaces/{self.namespace}/sandboxclaims"
        return list(self.plane.http.get(path).raise_for_status().json()["items"])


@pytest.fixture
def real_pool(control_plane: ControlPlane) -> RealPool:
    return RealPool(control_plane)


@pytest.fixture(scope="session")
def sandboxd_pool(request: pytest.FixtureRequest, control_plane: ControlPlane) -> RealPool:
    """The warm pool of deploy/sandboxd-pool (pods running the real sandboxd), made on the first test that needs it."""
    started = time.monotonic()
    for manifest in pool_manifests(NAMESPACE, SANDBOXD_POOL_MANIFESTS):
        control_plane.apply(manifest)
    try:
        wait_for_pool(control_plane, NAMESPACE, SANDBOXD_POOL)
    except TimeoutError as late:
        raise TimeoutError(f"{late}\n{control_plane.diagnostics()}") from None
    _say(request.config, f"sandboxd warm pool ready in {time.monotonic() - started:.1f} s")
    return RealPool(control_plane, pool=SANDBOXD_POOL, runtime="sandboxd")


@pytest.fixture(scope="session")
def kept_pool_ready(control_plane: ControlPlane) -> ControlPlane:
    """The control plane with KEPT_POOL applied and ready (once per run)."""
    for manifest in kept_pool_manifests(NAMESPACE):
        control_plane.apply(manifest)
    wait_for_pool(control_plane, NAMESPACE, KEPT_POOL)
    return control_plane


@pytest.fixture
def real_kept_pool(kept_pool_ready: ControlPlane) -> RealPool:
    return RealPool(kept_pool_ready, pool=KEPT_POOL)
