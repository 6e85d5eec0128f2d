"""Kubernetes provider against `k8s-agent-sandbox` used directly, on the imitation cluster, in one run.

    .venv/bin/python bench/bench_kubernetes.py [--rounds 16] [--commands 200]

Both channels of the execution engine are measured: the pod's agent on its own port (a WebSocket through the
router, the default) and one-shot `/execute` requests (`agent_port=None`, the fallback). Figures, each with a
baseline from the same run:

- claim to first command, and one command (`echo hi`) on each channel, against the client's own
  `create_sandbox` and `commands.run`; a third command row sends the one-shot wrapper (`timeout -s KILL ...
  /bin/sh -c ...`) through the client directly, which splits the fallback's cost into the pod's and ours;
- `execute("echo hi")` through MCP streamable HTTP against the client's `commands.run` plus an MCP `ping`
  (issue 11: at most 3 ms above);
- commands per second of 16 sessions x 20 commands against one session, on each channel;
- streaming: how long after `echo first` wrote its line (by its own timestamp) the MCP client holds it as a
  progress notification, through the agent port (target: within 250 ms).

Fairness: the direct baseline does what a user of the client does for the same operation, on one shared
`AsyncSandboxClient` with the same Kubernetes API client settings; the sides alternate which goes first in every
round and every command, and each claim waits until the warm pool has had time to refill.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import platform
import secrets
import statistics
import tempfile
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import httpx
from k8s_agent_sandbox.async_sandbox_client import AsyncSandboxClient
from k8s_agent_sandbox.models import SandboxDirectConnectionConfig
from mcp import ClientSession
from mcp.client.streamable_http import streamable_http_client

from langchain_kubernetes_agent_sandbox.providers.kubernetes import KubernetesConfig, KubernetesProvider, commands
from langchain_kubernetes_agent_sandbox.providers.kubernetes.connection import api_client
from langchain_kubernetes_agent_sandbox.sandbox import Sandbox
from langchain_kubernetes_agent_sandbox.testing import FakeCluster
from langchain_kubernetes_agent_sandbox.testing.server_process import serve_http

SESSIONS, PER_SESSION = 16, 20
REFILL_SECONDS = 1.5
"""Pause before each timed claim: the imitation starts a replacement pod (a Python process) per claim."""
COMMAND = "echo hi"
Figure = dict[str, Any]
"""figure, value, unit, baseline, baseline_is."""


async def timed(action: Callable[[], Awaitable[object]]) -> float:
    started = time.perf_counter()
    await action()
    return time.perf_counter() - started


def median_ms(samples: list[float]) -> float:
    return statistics.median(samples) * 1000


def machine() -> str:
    model = ""
    with contextlib.suppress(OSError), open("/proc/cpuinfo") as cpuinfo:
        model = next((line.split(":", 1)[1].strip() for line in cpuinfo if line.startswith("model name")), "")
    load = ", ".join(f"{value:.1f}" for value in os.getloadavg())
    system = f"{platform.system()} {platform.release()}"
    return f"{os.cpu_count()} cores {model or platform.machine()}, {system}, load {load}"


@contextlib.asynccontextmanager
async def mcp_over_http(cluster: FakeCluster) -> AsyncIterator[ClientSession]:
    """This project's server on the imitation cluster, as its own process, and a client of it."""
    token = secrets.token_hex(16)
    folder = Path(tempfile.mkdtemp(prefix="kas-bench-k8s-"))
    (folder / "tokens").write_text(f"{token} bench\n")
    settings = [
        "--provider=kubernetes",
        f"--warm-pool={cluster.pool}",
        f"--api-url={cluster.router_url}",
        f"--kubeconfig={cluster.kubeconfig}",
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


async def execute(client: ClientSession, command: str, **options: Any) -> Any:
    result = await client.call_tool("execute", {"command": command}, **options)
    if result.isError:
        raise RuntimeError(f"execute failed: {result.content}")
    return result


async def claim_each(
    number: int,
    claims: dict[str, list[float]],
    direct: Callable[[], Awaitable[Any]],
    provider: Callable[[], Awaitable[Any]],
) -> tuple[Any, Any]:
    """One claim through each side, each timed into `claims`; which side goes first alternates with round `number`,
    and the pool refills before each."""
    order = [("direct", direct), ("provider", provider)]
    if number % 2:
        order.reverse()
    made: dict[str, Any] = {}
    for name, claim in order:
        await asyncio.sleep(REFILL_SECONDS)
        started = time.perf_counter()
        made[name] = await claim()
        claims[name].append(time.perf_counter() - started)
    return made["direct"], made["provider"]


async def first_line_delay(client: ClientSession) -> float:
    seen: list[float] = []

    async def progress(_progress: float, _total: float | None, message: str | None) -> None:
        for text in (message or "").splitlines():
            if text.startswith("first ") and not seen:
                seen.append(time.time() - float(text.split()[1]))

    await execute(client, "echo first $(date +%s.%N); sleep 3; echo second", progress_callback=progress)
    if not seen:
        raise RuntimeError("no progress notification carried the first line")
    return seen[0]


async def throughput(sandboxes: list[Sandbox]) -> tuple[float, float]:
    """Commands per second of one session alone, then of all at once."""

    async def session(sandbox: Sandbox) -> None:
        for _ in range(PER_SESSION):
            await sandbox.run(COMMAND)

    single = await timed(lambda: session(sandboxes[0]))
    many = await timed(lambda: asyncio.gather(*(session(sandbox) for sandbox in sandboxes)))
    return PER_SESSION / single, len(sandboxes) * PER_SESSION / many


async def main(rounds: int, command_count: int) -> list[Figure]:
    figures: list[Figure] = []
    with FakeCluster({"python-pool": SESSIONS + 4}) as cluster:

        def config(**options: Any) -> KubernetesConfig:
            return KubernetesConfig(
                warm_pool=cluster.pool, api_url=cluster.router_url, kubeconfig=cluster.kubeconfig, **options
            )

        agent, oneshot = KubernetesProvider(config()), KubernetesProvider(config(agent_port=None))
        api = await api_client(config())
        direct = AsyncSandboxClient(
            connection_config=SandboxDirectConnectionConfig(api_url=cluster.router_url), cleanup=False, api_client=api
        )

        async def claim_direct() -> Any:
            handle = await direct.create_sandbox(cluster.pool, shutdown_after_seconds=600)
            await handle.commands.run(COMMAND)
            return handle

        async def claim_provider() -> Any:
            sandbox = await agent.create(lifetime=600)
            await sandbox.run(COMMAND)
            return sandbox

        for claim in (claim_direct, claim_provider):  # connections, imports and caches warm on both sides
            await (await claim()).terminate()
        claims: dict[str, list[float]] = {"direct": [], "provider": []}
        runs: dict[str, list[float]] = {"direct": [], "agent port": [], "one-shot": [], "wrapped": []}
        wrapped = commands.wrap(COMMAND, agent.limits.default_timeout, "/app", {})
        per_round = max(1, command_count // rounds)
        for number in range(rounds):
            handle, sandbox = await claim_each(number, claims, claim_direct, claim_provider)
            await sandbox.agent()  # the first command went one-shot while the agent started
            same_pod = await oneshot.get(sandbox.id)
            calls: dict[str, Callable[[], Awaitable[object]]] = {
                "direct": lambda h=handle: h.commands.run(COMMAND),
                "agent port": lambda s=sandbox: s.run(COMMAND),
                "one-shot": lambda s=same_pod: s.run(COMMAND),
                "wrapped": lambda h=handle: h.commands.run(wrapped),
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
        for channel in ("agent port", "one-shot"):
            figures.append(fig(f"one command (`{COMMAND}`), {channel}", runs[channel], runs["direct"], client_label))
        figures.append(
            fig("one command, the client sending the one-shot wrapper", runs["one-shot"], runs["wrapped"], "wrapper")
        )

        async with mcp_over_http(cluster) as client:
            await execute(client, COMMAND)
            await asyncio.sleep(1)  # the session's agent starts after its first command
            mcp: dict[str, list[float]] = {"execute": [], "run": [], "ping": []}
            handle = await direct.create_sandbox(cluster.pool, shutdown_after_seconds=600)
            for _ in range(command_count):
                mcp["execute"].append(await timed(lambda: execute(client, COMMAND)))
                mcp["run"].append(await timed(lambda h=handle: h.commands.run(COMMAND)))
                mcp["ping"].append(await timed(client.send_ping))
            await handle.terminate()
            anchor = median_ms(mcp["run"]) + median_ms(mcp["ping"])
            figures.append(
                {
                    "figure": f"`execute('{COMMAND}')` through MCP streamable HTTP, agent port (target: anchor + 3 ms)",
                    "value": median_ms(mcp["execute"]),
                    "unit": "ms",
                    "baseline": anchor,
                    "baseline_is": "client's commands.run + MCP ping",
                }
            )
            delays = [await first_line_delay(client) for _ in range(3)]
            figures.append(
                {
                    "figure": "first line at the MCP client after it was written, agent port "
                    f"(max {max(delays) * 1000:.0f} ms; target 250 ms)",
                    "value": median_ms(delays),
                    "unit": "ms",
                    "baseline": None,
                    "baseline_is": "",
                }
            )

        await asyncio.sleep(SESSIONS * 0.6)  # let the pool refill before taking all of it
        for name, provider in (("agent port", agent), ("one-shot", oneshot)):
            sandboxes = [await provider.create() for _ in range(SESSIONS)]
            for sandbox in sandboxes:
                await sandbox.agent()
            await asyncio.sleep(SESSIONS * 0.6)  # the pods that replace these in the pool start before timing
            single, many = await throughput(sandboxes)
            figures.append(
                {
                    "figure": f"{SESSIONS} sessions x {PER_SESSION} commands at once, {name}: commands/s",
                    "value": many,
                    "unit": "cmd/s",
                    "baseline": single,
                    "baseline_is": "one session",
                }
            )
            for sandbox in sandboxes:
                await sandbox.terminate()
            await asyncio.sleep(SESSIONS * 0.6)
        await direct.close()
        await agent.aclose()
        await oneshot.aclose()
        await api.close()
    return figures


def fig(name: str, ours: list[float], baseline: list[float], baseline_is: str) -> Figure:
    return {
        "figure": f"{name} (median of {len(ours)})",
        "value": median_ms(ours),
        "unit": "ms",
        "baseline": median_ms(baseline),
        "baseline_is": baseline_is,
    }


def report(figures: list[Figure]) -> str:
    lines = ["| figure | value | baseline (same run) | ratio |", "|---|---:|---|---:|"]
    for f in figures:
        base = "" if f["baseline"] is None else f"{f['baseline']:.1f} {f['unit']} ({f['baseline_is']})"
        ratio = "" if not f["baseline"] else f"{f['value'] / f['baseline']:.2f}"
        lines.append(f"| {f['figure']} | {f['value']:.1f} {f['unit']} | {base} | {ratio} |")
    return "\n".join(lines)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=16, help="claims per side (default 16)")
    parser.add_argument("--commands", type=int, default=200, help="commands per side (default 200)")
    arguments = parser.parse_args()
    print(f"machine: {machine()}\n")
    print(report(asyncio.run(main(arguments.rounds, arguments.commands))))
