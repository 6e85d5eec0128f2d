"""The execution engine's native channel on Kubernetes: the pod's agent on a port of its own, reached through the
sandbox-router as a WebSocket; what the pod says about it is checked, and nobody without its token gets in."""

from __future__ import annotations

import asyncio
import json
import signal
from collections.abc import AsyncIterator

import aiohttp
import pytest
from k8s_agent_sandbox.models import SandboxdInClusterConnectionConfig, SandboxdPodTunnelConnectionConfig

from langchain_kubernetes_agent_sandbox import Sandbox, SandboxError
from langchain_kubernetes_agent_sandbox.engine import wire
from langchain_kubernetes_agent_sandbox.providers.kubernetes import KubernetesConfig, KubernetesProvider
from langchain_kubernetes_agent_sandbox.providers.kubernetes.agent import AgentUnavailable, endpoint_of, token_of
from langchain_kubernetes_agent_sandbox.providers.kubernetes.config import AGENT_PORT
from langchain_kubernetes_agent_sandbox.testing import FakeCluster


def config_for(cluster: FakeCluster, **options: object) -> KubernetesConfig:
    return KubernetesConfig(
        warm_pool=cluster.pool, api_url=cluster.router_url, kubeconfig=cluster.kubeconfig, **options
    )


@pytest.fixture
async def provider(fake_cluster: FakeCluster) -> AsyncIterator[KubernetesProvider]:
    made = KubernetesProvider(config_for(fake_cluster))
    yield made
    await made.aclose()


@pytest.fixture
async def sandbox(provider: KubernetesProvider) -> AsyncIterator[Sandbox]:
    created = await provider.create()
    yield created
    await created.terminate()


async def test_commands_run_through_the_pods_agent_beyond_the_routers_request_limit(sandbox: Sandbox) -> None:
    assert await sandbox.agent() is not None
    # One request through the router may last 180 s at most; a WebSocket is not held to that.
    result = await sandbox.run("echo through the agent", timeout=600)
    assert (result.stdout, result.exit_code) == ("through the agent\n", 0)
    process = await sandbox.start("read line; echo got $line", timeout=30, stdin=True)
    await process.write_stdin(b"input\n")
    ended = await process.wait(timeout=20)
    assert ended is not None
    assert ended.result.stdout == "got input\n"


async def test_the_agent_port_admits_only_the_token_its_agent_wrote(
    sandbox: Sandbox, fake_cluster: FakeCluster
) -> None:
    assert await sandbox.agent() is not None
    record = json.loads((await sandbox.run("cat /tmp/.kas/agent/port.json")).stdout)
    [claim] = [claim for claim in fake_cluster.claims() if claim["metadata"]["name"] == sandbox.id]
    routing = {"X-Sandbox-ID": claim["status"]["sandbox"]["name"], "X-Sandbox-Port": str(AGENT_PORT)}
    url = "ws" + fake_cluster.router_url[len("http") :] + wire.PORT_PATH
    async with aiohttp.ClientSession() as session:
        for forged in ({}, {wire.TOKEN_HEADER: "x" * 43}, {wire.TOKEN_HEADER: record["token"][:-1]}):
            with pytest.raises(aiohttp.WSServerHandshakeError) as refused:
                await session.ws_connect(url, headers={**routing, **forged})
            assert refused.value.status == 403
        async with session.ws_connect(url, headers={**routing, wire.TOKEN_HEADER: record["token"]}) as admitted:
            await admitted.send_bytes(wire.encode({"op": "ping", "r": 1}))
            answer = await admitted.receive_bytes(timeout=10)
            assert b'"op":"pong"' in answer


async def test_a_killed_agent_is_replaced_and_its_processes_reported_lost(
    sandbox: Sandbox, fake_cluster: FakeCluster
) -> None:
    running = await sandbox.start("sleep 30", timeout=60)
    pid = json.loads((await sandbox.run("cat /tmp/.kas/agent/port.json")).stdout)["pid"]
    channel = await sandbox.agent()
    assert channel is not None
    oneshot = KubernetesProvider(config_for(fake_cluster, agent_port=None))
    try:
        same = await oneshot.get(sandbox.id)
        assert (await same.run(f"kill -{signal.SIGKILL} {pid}")).exit_code == 0
    finally:
        await oneshot.aclose()
    async with asyncio.timeout(10):  # a call made before the loss reaches this side fails with it; not the point here
        while not channel.closed:  # noqa: ASYNC110 - a channel has no event for its end
            await asyncio.sleep(0.05)
    assert (await sandbox.run("echo back")).stdout == "back\n"
    report = await (await sandbox.process(running.id)).wait(timeout=20)
    assert report is not None
    assert report.exit is not None
    assert report.exit.state == "lost"
    assert json.loads((await sandbox.run("cat /tmp/.kas/agent/port.json")).stdout)["pid"] != pid


async def test_without_an_agent_port_every_command_is_a_one_shot_request(fake_cluster: FakeCluster) -> None:
    provider = KubernetesProvider(config_for(fake_cluster, agent_port=None))
    try:
        sandbox = await provider.create()
        assert await sandbox.agent() is None
        assert (await sandbox.run("echo one-shot")).stdout == "one-shot\n"
        assert (await sandbox.run("test -e /tmp/.kas/agent/port.json")).exit_code == 1
        await sandbox.terminate()
    finally:
        await provider.aclose()


@pytest.mark.parametrize(
    "printed",
    [
        "",
        "not json",
        json.dumps({"port": AGENT_PORT + 1, "token": "t" * 43, "pid": 1}),
        json.dumps({"port": AGENT_PORT, "token": "short", "pid": 1}),
        json.dumps({"port": AGENT_PORT, "token": "t" * 40 + "\r\nX: y", "pid": 1}),
        json.dumps({"port": str(AGENT_PORT), "token": "t" * 43, "pid": 1}),
        json.dumps({"port": AGENT_PORT, "token": "t" * 43, "pid": 1}) + " " * 5000,
    ],
)
def test_a_record_the_pod_forged_or_mangled_is_refused(printed: str) -> None:
    with pytest.raises(AgentUnavailable):
        token_of(printed, AGENT_PORT)


def test_the_record_of_a_genuine_agent_gives_its_token() -> None:
    printed = "note\n" + json.dumps({"port": AGENT_PORT, "token": "t" * 43, "pid": 7}) + "\n"
    assert token_of(printed, AGENT_PORT) == "t" * 43


def test_a_sandboxd_pod_is_reached_at_its_own_address_in_cluster_and_refused_through_the_tunnel() -> None:
    in_cluster = SandboxdInClusterConnectionConfig(mode="in-cluster-pod-ip")
    url, headers, _ = endpoint_of(in_cluster, "http://198.18.0.7:8080", "sb", "default", "198.18.0.7", 8000)
    assert (url, headers) == (f"ws://198.18.0.7:8000{wire.PORT_PATH}", {})
    with pytest.raises(SandboxError, match="--connection in-cluster"):
        endpoint_of(SandboxdPodTunnelConnectionConfig(), "http://127.0.0.1:41234", "sb", "default", None, 8000)
