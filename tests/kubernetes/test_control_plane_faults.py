"""Faults a real cluster can show, on the real control plane: the API server restarted under load, the
agent-sandbox controller stopped, the router down, a pod's runtime killed, a namespace's claim quota used up. Each
ends in a typed error or goes on unharmed, and the next call works once the fault is gone."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncIterator

import httpx
import pytest

from langchain_kubernetes_agent_sandbox import QuotaExceededError, Sandbox, SandboxError, TimedOutError
from langchain_kubernetes_agent_sandbox.providers.kubernetes import KubernetesConfig, KubernetesProvider
from langchain_kubernetes_agent_sandbox.testing.control_plane import ControlPlane
from tests.control_plane import NAMESPACE, POOL, pool_manifests

LABEL = "langchain-kubernetes-agent-sandbox/test=real-faults"
CLAIMS = f"/apis/extensions.agents.x-k8s.io/v1beta1/namespaces/{NAMESPACE}/sandboxclaims"


@pytest.fixture
async def provider(control_plane: ControlPlane) -> AsyncIterator[KubernetesProvider]:
    """A provider whose calls give up within seconds but whose claims wait long enough for a replenishing pool
    (and for the controller's watches to come back after an API server restart); every component runs again and
    no sandbox is left after it."""
    try:
        async with provider_on(control_plane, ready_timeout=30) as made:
            yield made
    finally:
        for component in ("agent-sandbox-controller", "sandbox-router"):
            if component not in control_plane.processes:
                await asyncio.to_thread(control_plane.start_component, component)


@contextlib.asynccontextmanager
async def provider_on(plane: ControlPlane, *, ready_timeout: float) -> AsyncIterator[KubernetesProvider]:
    """A provider on the control plane; no sandbox it made is left after it."""
    config = KubernetesConfig(
        warm_pool=POOL,
        namespace=NAMESPACE,
        api_url=plane.router_url,
        kubeconfig=plane.kubeconfig,
        ready_timeout=ready_timeout,
        api_timeout=3,
        file_timeout=4,
        timeout_margin=2,
    )
    made = KubernetesProvider(config)
    try:
        yield made
    finally:
        for sandbox in await made.list():
            await sandbox.terminate()
        await made.aclose()


def claims_left(plane: ControlPlane) -> list[str]:
    listing = plane.http.get(CLAIMS, params={"labelSelector": LABEL}).raise_for_status().json()
    return [claim["metadata"]["name"] for claim in listing["items"]]


async def create(provider: KubernetesProvider) -> Sandbox:
    return await provider.create(labels={"test": "real-faults"})


async def test_commands_go_on_while_the_api_server_restarts_and_claims_work_after(
    provider: KubernetesProvider, control_plane: ControlPlane
) -> None:
    sandbox = await create(provider)

    async def commands() -> list[str]:
        outputs = []
        for n in range(40):
            outputs.append((await sandbox.run(f"echo {n}")).stdout)
            await asyncio.sleep(0.05)
        return outputs

    load = asyncio.create_task(commands())
    await asyncio.sleep(0.3)
    await asyncio.to_thread(control_plane.restart, "kube-apiserver")
    # The router reaches pods by the address the client sends: no command waits for the API server.
    assert await load == [f"{n}\n" for n in range(40)]
    again = await create(provider)
    assert (await again.run("echo after the restart")).stdout == "after the restart\n"


async def test_with_the_controller_stopped_a_claim_times_out_and_is_rolled_back(
    provider: KubernetesProvider, control_plane: ControlPlane
) -> None:
    await asyncio.to_thread(control_plane.stop_component, "agent-sandbox-controller")
    started = time.monotonic()
    async with provider_on(control_plane, ready_timeout=3) as impatient:
        with pytest.raises(TimedOutError, match="python-pool"):
            await create(impatient)
    assert time.monotonic() - started < 8
    assert claims_left(control_plane) == []
    await asyncio.to_thread(control_plane.start_component, "agent-sandbox-controller")
    assert (await (await create(provider)).run("echo back")).stdout == "back\n"


async def test_router_down_times_out_the_call_and_is_back_when_it_returns(
    provider: KubernetesProvider, control_plane: ControlPlane
) -> None:
    sandbox = await create(provider)
    await sandbox.write_file("kept.txt", b"kept")
    await asyncio.to_thread(control_plane.stop_component, "sandbox-router")
    started = time.monotonic()
    # The client retries a refused connection with backoff; the provider's file limit ends that.
    with pytest.raises(TimedOutError, match="read a file"):
        await sandbox.read_file("kept.txt")
    assert time.monotonic() - started < 4 + 2
    await asyncio.to_thread(control_plane.start_component, "sandbox-router")
    assert await sandbox.read_file("kept.txt") == b"kept"


async def test_a_killed_runtime_fails_the_command_typed_and_its_pod_restarts(
    provider: KubernetesProvider, control_plane: ControlPlane
) -> None:
    sandbox = await create(provider)
    claim = control_plane.http.get(f"{CLAIMS}/{sandbox.id}").raise_for_status().json()
    pod = claim["status"]["sandbox"]["name"]
    running = asyncio.create_task(sandbox.run("sleep 30", timeout=40))
    await asyncio.sleep(0.5)
    assert control_plane.kill_pod(NAMESPACE, pod) >= 1
    started = time.monotonic()
    with pytest.raises(SandboxError):
        await running
    assert time.monotonic() - started < 5
    # As a kubelet would, the runner restarts the container (restartPolicy OnFailure) and reports it.
    deadline = time.monotonic() + 30
    while True:
        status = control_plane.http.get(f"/api/v1/namespaces/{NAMESPACE}/pods/{pod}").json()["status"]
        ready = any(c["type"] == "Ready" and c["status"] == "True" for c in status["conditions"])
        if ready and status["containerStatuses"][0]["restartCount"] == 1:
            break
        assert time.monotonic() < deadline, status
        await asyncio.sleep(0.2)


QUOTA_NAMESPACE = "quota-test"


@pytest.fixture
async def quota_namespace(control_plane: ControlPlane) -> AsyncIterator[str]:
    """A namespace with the project's pool whose ResourceQuota admits one SandboxClaim."""
    control_plane.apply({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": QUOTA_NAMESPACE}})
    quota = {
        "apiVersion": "v1",
        "kind": "ResourceQuota",
        "metadata": {"name": "one-claim", "namespace": QUOTA_NAMESPACE},
        "spec": {"hard": {"count/sandboxclaims.extensions.agents.x-k8s.io": "1"}},
    }
    control_plane.apply(quota)
    for manifest in pool_manifests(QUOTA_NAMESPACE):
        control_plane.apply(manifest)
    path = f"/api/v1/namespaces/{QUOTA_NAMESPACE}/resourcequotas/one-claim"
    deadline = time.monotonic() + 30
    while "used" not in control_plane.http.get(path).json().get("status", {}):  # counted by the quota controller
        assert time.monotonic() < deadline, "the quota controller never counted the quota"
        await asyncio.sleep(0.2)
    try:
        yield QUOTA_NAMESPACE
    finally:
        control_plane.http.delete(f"/api/v1/namespaces/{QUOTA_NAMESPACE}")


async def test_a_claim_beyond_the_namespace_quota_is_quota_exceeded(
    quota_namespace: str, control_plane: ControlPlane
) -> None:
    config = KubernetesConfig(
        warm_pool=POOL,
        namespace=quota_namespace,
        api_url=control_plane.router_url,
        kubeconfig=control_plane.kubeconfig,
        ready_timeout=60,
    )
    provider = KubernetesProvider(config)
    try:
        first = await provider.create()
        assert (await first.run("echo within the quota")).ok
        with pytest.raises(QuotaExceededError, match="exceeded quota: one-claim"):
            await provider.create()
        await first.terminate()
    finally:
        for left in await provider.list():
            await left.terminate()
        await provider.aclose()


def compact_etcd(plane: ControlPlane) -> int:
    """Compact etcd's history up to its current revision (through etcd's own JSON gateway): a watch from any
    earlier resourceVersion then answers 410 Gone, as on a cluster whose history was compacted meanwhile."""
    for index in range(5):  # writes, so that the claim's own revision is behind the compacted one
        metadata = {"name": f"compact-{index}", "namespace": NAMESPACE}
        plane.apply({"apiVersion": "v1", "kind": "ConfigMap", "metadata": metadata})
    answer = httpx.post(f"{plane.etcd_url}/v3/kv/range", json={"key": "AA=="}, timeout=5).raise_for_status()
    revision = int(answer.json()["header"]["revision"])
    compaction = {"revision": revision, "physical": True}
    httpx.post(f"{plane.etcd_url}/v3/kv/compaction", json=compaction, timeout=10).raise_for_status()
    return revision


async def test_a_claim_whose_watch_expired_during_an_api_server_restart_is_still_served(
    provider: KubernetesProvider, control_plane: ControlPlane, caplog: pytest.LogCaptureFixture
) -> None:
    await asyncio.to_thread(control_plane.stop_component, "agent-sandbox-controller")
    caplog.set_level(logging.INFO, logger="k8s_agent_sandbox")
    claiming = asyncio.create_task(create(provider))
    for _ in range(200):
        if claims_left(control_plane) or claiming.done():
            break
        await asyncio.sleep(0.05)
    await asyncio.sleep(0.5)  # the client now watches the claim from its creation's resourceVersion
    await asyncio.to_thread(compact_etcd, control_plane)
    await asyncio.to_thread(control_plane.restart, "kube-apiserver")
    await asyncio.to_thread(control_plane.start_component, "agent-sandbox-controller")
    sandbox = await claiming
    assert (await sandbox.run("echo served")).stdout == "served\n"
    assert "410 Gone" in caplog.text, "the watch was expected to come back with 410 Gone after the compaction"
    for _ in range(50):  # a claim an attempt made before a 503 is rolled back by the client
        if claims_left(control_plane) == [sandbox.id]:
            break
        await asyncio.sleep(0.1)
    assert claims_left(control_plane) == [sandbox.id]
