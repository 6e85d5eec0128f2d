"""The Kubernetes provider on sandboxd pods against `k8s-agent-sandbox` used directly, on the real control plane.

    .venv/bin/python bench/bench_sandboxd.py [--rounds 6] [--commands 60]

The control plane is built (cached) and started as the tests do, with the warm pool of deploy/sandboxd-pool (the
real sandboxd v0.5.6 in each pod, published on the pod address). The provider connects in-cluster by pod address,
as the client's `SandboxdInClusterConnectionConfig` does. Figures, each with a baseline from the same run:

- claim to first command: `create()` then `run("echo hi")` against the client's `create_sandbox` and
  `commands.run` (sandboxd's unary `Execute`);
- one command through the engine's agent (relayed by a process sandboxd started) against `commands.run`;
- 1 MiB written and read back against the client's `files.write` and `files.read` (both sandboxd's REST API);
- `execute("echo hi")` through MCP streamable HTTP against `commands.run` plus an MCP `ping`;
- streaming: how long after `echo first` wrote its line (by its own timestamp) the MCP client holds it as a
  progress notification (issue 14: within 250 ms on sandboxd).

Fairness: both sides share one Kubernetes API client's settings and the same pool, alternate which goes first in
every round and command, and each claim waits until the pool has refilled.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import secrets
import sys
import tempfile
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import yaml
from k8s_agent_sandbox.async_sandbox_client import AsyncSandboxClient
from k8s_agent_sandbox.models import SandboxdInClusterConnectionConfig
from mcp import ClientSession
from mcp.client.streamable_http import streamable_http_client

BENCH = Path(__file__).resolve().parent
sys.path.insert(0, str(BENCH))

from bench_kubernetes import (  # noqa: E402
    COMMAND,
    Figure,
    claim_each,
    execute,
    fig,
    first_line_delay,
    machine,
    median_ms,
    report,
    timed,
)
from langchain_kubernetes_agent_sandbox.providers.kubernetes import KubernetesConfig, KubernetesProvider  # noqa: E402
from langchain_kubernetes_agent_sandbox.providers.kubernetes.config import ConnectionMode, RuntimeKind  # noqa: E402
from langchain_kubernetes_agent_sandbox.providers.kubernetes.connection import api_client  # noqa: E402
from langchain_kubernetes_agent_sandbox.testing.control_plane import ControlPlane  # noqa: E402
from langchain_kubernetes_agent_sandbox.testing.go_build import build_control_plane  # noqa: E402
from langchain_kubernetes_agent_sandbox.testing.server_process import serve_http  # noqa: E402

ROOT = BENCH.parent
POOL_MANIFESTS = ROOT / "deploy" / "sandboxd-pool"
POOL, NAMESPACE, REPLICAS = "sandboxd-pool", "default", 4
REFILL_SECONDS = 1.5
FILE_BYTES = 1024 * 1024


@contextlib.contextmanager
def sandboxd_control_plane() -> Iterator[ControlPlane]:
    binaries = build_control_plane(ROOT / "tests" / "controlplane", report=print)
    plane = ControlPlane(binaries).start()
    try:
        for name in ("sandboxtemplate.yaml", "sandboxwarmpool.yaml"):
            manifest = yaml.safe_load((POOL_MANIFESTS / name).read_text())
            manifest["metadata"]["namespace"] = NAMESPACE
            if manifest["kind"] == "SandboxWarmPool":
                manifest["spec"]["replicas"] = REPLICAS
            plane.apply(manifest)
        path = f"/apis/extensions.agents.x-k8s.io/v1beta1/namespaces/{NAMESPACE}/sandboxwarmpools/{POOL}"
        deadline = time.monotonic() + 120
        while plane.http.get(path).json().get("status", {}).get("readyReplicas", 0) < REPLICAS:
            if time.monotonic() > deadline:
                raise TimeoutError(f"the sandboxd pool was not ready in time\n{plane.diagnostics()}")
            time.sleep(0.2)
        yield plane
    finally:
        plane.stop()


@contextlib.asynccontextmanager
async def mcp_over_http(plane: ControlPlane) -> AsyncIterator[ClientSession]:
    """This project's server on the sandboxd pool, as its own process, and a client of it."""
    token = secrets.token_hex(16)
    folder = Path(tempfile.mkdtemp(prefix="kas-bench-sandboxd-"))
    (folder / "tokens").write_text(f"{token} bench\n")
    settings = [
        "--provider=kubernetes",
        f"--warm-pool={POOL}",
        "--runtime=sandboxd",
        "--connection=in-cluster",
        f"--kubeconfig={plane.kubeconfig}",
        f"--token-file={folder / 'tokens'}",
    ]
    with (folder / "server.log").open("wb") as log, serve_http(*settings, log=log) as served:
        async with (
            httpx.AsyncClient(headers={"Authorization": f"Bearer {token}"}, timeout=httpx.Timeout(60)) as http,
            streamable_http_client(served.mcp_url, http_client=http) as (read, write, _),
            ClientSession(read, write) as client,
        ):
            await client.initialize()
            yield client


async def measure(plane: ControlPlane, rounds: int, command_count: int) -> list[Figure]:
    figures: list[Figure] = []
    config = KubernetesConfig(
        warm_pool=POOL,
        namespace=NAMESPACE,
        connection=ConnectionMode.IN_CLUSTER,
        runtime=RuntimeKind.SANDBOXD,
        kubeconfig=plane.kubeconfig,
    )
    provider = KubernetesProvider(config)
    api = await api_client(config)
    direct = AsyncSandboxClient(
        connection_config=SandboxdInClusterConnectionConfig(mode="in-cluster-pod-ip"), cleanup=False, api_client=api
    )

    async def claim_direct() -> Any:
        handle = await direct.create_sandbox(POOL, namespace=NAMESPACE, shutdown_after_seconds=600)
        await handle.commands.run(COMMAND)
        return handle

    async def claim_provider() -> Any:
        sandbox = await provider.create(lifetime=600)
        await sandbox.run(COMMAND)
        return sandbox

    for claim in (claim_direct, claim_provider):  # connections, imports and caches warm on both sides
        await (await claim()).terminate()
    claims: dict[str, list[float]] = {"direct": [], "provider": []}
    runs: dict[str, list[float]] = {"direct": [], "agent": [], "direct files": [], "files": []}
    data = secrets.token_bytes(FILE_BYTES)
    per_round = max(1, command_count // rounds)
    for number in range(rounds):
        handle, sandbox = await claim_each(number, claims, claim_direct, claim_provider)
        await sandbox.agent()  # the first command went one-shot while the agent started

        async def files_direct(h: Any = handle) -> None:
            await h.files.write("bench.bin", data)
            assert await h.files.read("bench.bin") == data

        async def files_provider(s: Any = sandbox) -> None:
            await s.write_file("/app/bench.bin", data)
            assert await s.read_file("/app/bench.bin") == data

        calls: dict[str, Callable[[], Awaitable[object]]] = {
            "direct": lambda h=handle: h.commands.run(COMMAND),
            "agent": lambda s=sandbox: s.run(COMMAND),
            "direct files": files_direct,
            "files": files_provider,
        }
        for index in range(per_round):
            names = list(calls)
            if index % 2 != number % 2:
                names.reverse()
            for name in names:
                runs[name].append(await timed(calls[name]))
        await handle.terminate()
        await sandbox.terminate()

    client_label = "k8s-agent-sandbox directly"
    figures.append(fig("claim to first command", claims["provider"], claims["direct"], client_label))
    figures.append(fig(f"one command (`{COMMAND}`), through the agent", runs["agent"], runs["direct"], client_label))
    figures.append(fig("1 MiB written and read back", runs["files"], runs["direct files"], client_label))

    await asyncio.sleep(REFILL_SECONDS)
    async with mcp_over_http(plane) as client:
        await execute(client, COMMAND)
        await asyncio.sleep(1)  # the session's agent starts after its first command
        mcp: dict[str, list[float]] = {"execute": [], "run": [], "ping": []}
        handle = await direct.create_sandbox(POOL, namespace=NAMESPACE, shutdown_after_seconds=600)
        for _ in range(command_count):
            mcp["execute"].append(await timed(lambda: execute(client, COMMAND)))
            mcp["run"].append(await timed(lambda h=handle: h.commands.run(COMMAND)))
            mcp["ping"].append(await timed(client.send_ping))
        await handle.terminate()
        figures.append(
            {
                "figure": f"`execute('{COMMAND}')` through MCP streamable HTTP (target: anchor + 3 ms)",
                "value": median_ms(mcp["execute"]),
                "unit": "ms",
                "baseline": median_ms(mcp["run"]) + median_ms(mcp["ping"]),
                "baseline_is": "client's commands.run + MCP ping",
            }
        )
        delays = [await first_line_delay(client) for _ in range(3)]
        figures.append(
            {
                "figure": f"first line at the MCP client after it was written (max {max(delays) * 1000:.0f} ms; "
                "target 250 ms)",
                "value": median_ms(delays),
                "unit": "ms",
                "baseline": None,
                "baseline_is": "",
            }
        )
        listed = (await client.call_tool("list_sessions", {})).structuredContent or {}
        for session in listed.get("sessions", []):
            await client.call_tool("close_session", {"session_id": session["session_id"]})
    await direct.close()
    await provider.aclose()
    await api.close()
    return figures


def main(rounds: int, command_count: int) -> list[Figure]:
    with sandboxd_control_plane() as plane:
        return asyncio.run(measure(plane, rounds, command_count))


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=6, help="claims per side (default 6)")
    parser.add_argument("--commands", type=int, default=60, help="commands per side (default 60)")
    arguments = parser.parse_args()
    print(f"machine: {machine()}\n")
    print(report(main(arguments.rounds, arguments.commands)))
