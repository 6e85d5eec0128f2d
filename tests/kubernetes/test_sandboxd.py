"""What is particular to sandboxd pods on the real control plane: the engine's agent lives behind sandboxd's process
API (no port of its own), survives the relay that carries it, comes back after the pod's processes are killed, and
files under `/app` stay where commands see them whatever sandboxd's root is."""

from __future__ import annotations

import asyncio
import contextlib
import copy
import os
import signal
import time
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest

from langchain_kubernetes_agent_sandbox.engine.processes import Exit, Report
from langchain_kubernetes_agent_sandbox.errors import SandboxError
from langchain_kubernetes_agent_sandbox.providers.kubernetes import KubernetesConfig, KubernetesProvider, sandboxd
from langchain_kubernetes_agent_sandbox.providers.kubernetes.config import AGENT_PORT, ConnectionMode, RuntimeKind
from langchain_kubernetes_agent_sandbox.sandbox import Sandbox
from langchain_kubernetes_agent_sandbox.testing.control_plane import ControlPlane
from tests.control_plane import NAMESPACE, SANDBOXD_POOL_MANIFESTS, RealPool, pool_manifests, wait_for_pool

CLAIMS = f"/apis/extensions.agents.x-k8s.io/v1beta1/namespaces/{NAMESPACE}/sandboxclaims"


def _provider(pool: str, kubeconfig: str) -> KubernetesProvider:
    config = KubernetesConfig(
        warm_pool=pool,
        namespace=NAMESPACE,
        connection=ConnectionMode.IN_CLUSTER,
        runtime=RuntimeKind.SANDBOXD,
        kubeconfig=kubeconfig,
    )
    return KubernetesProvider(config)


@pytest.fixture
async def sandbox(sandboxd_pool: RealPool) -> AsyncIterator[Sandbox]:
    provider = _provider(sandboxd_pool.pool, sandboxd_pool.kubeconfig)
    made = await provider.create(labels={"test": "sandboxd"})
    try:
        yield made
    finally:
        await made.terminate()
        await provider.aclose()


def _pod_ip(plane: ControlPlane, claim: str) -> str:
    status = plane.http.get(f"{CLAIMS}/{claim}").raise_for_status().json()["status"]
    return str(status["sandbox"]["podIPs"][0])


async def test_the_agent_opens_no_port_and_outlives_the_relay_a_server_restart_drops(
    sandbox: Sandbox, sandboxd_pool: RealPool
) -> None:
    await sandbox.run("true")
    assert await sandbox.agent() is not None
    job = await sandbox.start("sleep 1; echo after the restart", timeout=30)
    # Nothing listens on the pod network for the agent: it is reached through sandboxd's own process API.
    pod_ip = _pod_ip(sandboxd_pool.plane, sandbox.id)
    async with httpx.AsyncClient(timeout=2) as http:
        with pytest.raises(httpx.ConnectError):
            await http.get(f"http://{pod_ip}:{AGENT_PORT}/")
    # Another server process: its own gRPC stream and relay; the agent, and the job, are the pod's.
    again = _provider(sandboxd_pool.pool, sandboxd_pool.kubeconfig)
    try:
        found = await (await again.get(sandbox.id)).process(job.id)
        report = await found.follow(wait=20)
        assert report.result.stdout == "after the restart\n"
    finally:
        await again.aclose()


async def test_a_killed_pod_process_fails_the_running_command_at_once_and_the_next_call_gets_a_new_agent(
    sandbox: Sandbox, sandboxd_pool: RealPool
) -> None:
    plane = sandboxd_pool.plane
    await sandbox.run("true")
    await sandbox.agent()
    pod = plane.http.get(f"{CLAIMS}/{sandbox.id}").json()["status"]["sandbox"]["name"]
    running = asyncio.create_task(sandbox.run("sleep 30", timeout=40))
    await asyncio.sleep(0.5)
    assert plane.kill_pod(NAMESPACE, pod) >= 1  # sandboxd, its sidecars and the agent, as a crash would
    started = time.monotonic()
    with pytest.raises(SandboxError):
        await running
    assert time.monotonic() - started < 5
    deadline = time.monotonic() + 30
    while True:  # the pod runner restarts the containers (restartPolicy OnFailure), as a kubelet would
        try:
            result = await sandbox.run("echo back")
        except SandboxError:
            assert time.monotonic() < deadline
            await asyncio.sleep(0.5)
            continue
        assert result.stdout == "back\n"
        break


def _relays(plane: ControlPlane, sandbox: Sandbox) -> list[int]:
    """The agent's relays in the sandbox's pod (`agent.py pipe`): one per connection a server holds."""
    pod = plane.http.get(f"{CLAIMS}/{sandbox.id}").json()["status"]["sandbox"]["name"]
    relays = []
    for pid in plane.pod_pids(NAMESPACE, pod):
        with contextlib.suppress(OSError):
            argv = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
            if b"pipe" in argv and any(part.endswith(b"/agent.py") for part in argv):
                relays.append(pid)
    return relays


async def _followed_while_the_relay_gets(
    fault: signal.Signals, sandbox: Sandbox, plane: ControlPlane
) -> tuple[str, asyncio.Task[Report], int]:
    """A two-line command's id, the follow of it, and the pod's relay, sent `fault` between the two lines."""
    await sandbox.run("true")
    await sandbox.agent()
    [relay] = _relays(plane, sandbox)
    process = await sandbox.start("echo first; sleep 2; echo second", timeout=30)
    following = asyncio.create_task(process.follow(wait=30))
    await asyncio.sleep(0.5)
    os.kill(relay, fault)
    return process.id, following, relay


async def test_a_relay_that_stalls_mid_command_is_found_out_and_the_follow_goes_on(
    sandbox: Sandbox, sandboxd_pool: RealPool
) -> None:
    _, following, relay = await _followed_while_the_relay_gets(signal.SIGSTOP, sandbox, sandboxd_pool.plane)
    try:
        report = await following
    finally:
        with contextlib.suppress(ProcessLookupError):  # sandboxd ended it with its stream
            os.kill(relay, signal.SIGCONT)
    # Found out within the quiet limit and a ping's wait, and followed on over a new relay to the same agent.
    assert (report.result.stdout, report.exit) == ("first\nsecond\n", Exit("exited", 0))
    assert report.result.duration < 5


async def test_a_relay_that_ends_mid_command_costs_the_command_nothing(
    sandbox: Sandbox, sandboxd_pool: RealPool
) -> None:
    process_id, following, _ = await _followed_while_the_relay_gets(signal.SIGKILL, sandbox, sandboxd_pool.plane)
    with pytest.raises(SandboxError):
        await following  # the call in progress learns of it at once, as when the pod died
    # The agent that runs it was kept, not replaced: the command ends as it would have.
    report = await (await sandbox.process(process_id)).follow(wait=20)
    assert (report.result.stdout, report.exit) == ("first\nsecond\n", Exit("exited", 0))


async def test_what_a_relay_that_ends_early_wrote_reaches_the_message_bounded_and_printable(sandbox: Sandbox) -> None:
    runtime = await sandbox._sandboxd()  # type: ignore[attr-defined]
    flood = "printf 'no python3 here\\033[2J'; head -c 5000000 /dev/zero | tr '\\0' x; echo; echo last words; exit 3"
    pipe = await sandboxd.start(await runtime.grpc_channel(), ["/bin/sh", "-c", f"({flood}) >&2"], name="a test")
    with pytest.raises(ConnectionError) as ended:
        await pipe.readexactly(1)
    message = str(ended.value)
    assert "exit status 3" in message
    assert message.endswith("last words")
    assert len(message) < 700
    assert message.isprintable()


@pytest.fixture
async def workspace_rooted_pool(sandboxd_pool: RealPool) -> AsyncIterator[str]:
    """A pool whose sandboxd keeps upstream's default root, /workspace, so its file API cannot reach /app."""
    plane = sandboxd_pool.plane
    template, pool = (copy.deepcopy(m) for m in pool_manifests(NAMESPACE, SANDBOXD_POOL_MANIFESTS))
    template["metadata"]["name"] = "sandboxd-workspace-root"
    template["spec"]["podTemplate"]["spec"]["containers"][0].pop("args")
    pool["metadata"]["name"] = "sandboxd-workspace-pool"
    pool["spec"]["replicas"] = 1
    pool["spec"]["sandboxTemplateRef"]["name"] = "sandboxd-workspace-root"
    plane.apply(template)
    plane.apply(pool)
    wait_for_pool(plane, NAMESPACE, "sandboxd-workspace-pool")
    yield "sandboxd-workspace-pool"
    base = f"/apis/extensions.agents.x-k8s.io/v1beta1/namespaces/{NAMESPACE}"
    plane.http.delete(f"{base}/sandboxwarmpools/sandboxd-workspace-pool")
    plane.http.delete(f"{base}/sandboxtemplates/sandboxd-workspace-root")


async def test_files_under_app_stay_there_when_sandboxds_root_is_elsewhere(
    workspace_rooted_pool: str, sandboxd_pool: RealPool
) -> None:
    provider = _provider(workspace_rooted_pool, sandboxd_pool.kubeconfig)
    sandbox = await provider.create()
    try:
        await sandbox.write_file("/app/notes/a.txt", b"in app")
        assert (await sandbox.run("cat /app/notes/a.txt; ls /workspace")).stdout == "in app"
        assert await sandbox.read_file("/app/notes/a.txt") == b"in app"
        assert await sandbox.exists("/app/notes/a.txt")
        assert not await sandbox.exists("/workspace/notes/a.txt")
    finally:
        await sandbox.terminate()
        await provider.aclose()
