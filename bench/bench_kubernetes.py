"""Kubernetes provider overhead against `k8s-agent-sandbox` used directly, on the imitation cluster, in one run.

    .venv/bin/python bench/bench_kubernetes.py

Prints claim-to-first-command and per-command latency (median) for both, their ratio, and the provider's
throughput with 1 and 16 concurrent sessions of 20 commands each.
"""

from __future__ import annotations

import asyncio
import statistics
import time
from collections.abc import Awaitable, Callable

from k8s_agent_sandbox.async_sandbox_client import AsyncSandboxClient
from k8s_agent_sandbox.models import SandboxDirectConnectionConfig

from langchain_kubernetes_agent_sandbox.providers.kubernetes import KubernetesConfig, KubernetesProvider
from langchain_kubernetes_agent_sandbox.providers.kubernetes.connection import api_client
from langchain_kubernetes_agent_sandbox.testing import FakeCluster

ROUNDS, COMMANDS, SESSIONS, PER_SESSION = 6, 40, 16, 20


async def timed(action: Callable[[], Awaitable[object]]) -> float:
    started = time.perf_counter()
    await action()
    return time.perf_counter() - started


async def main() -> None:
    with FakeCluster({"bench-pool": SESSIONS + 2}) as cluster:
        config = KubernetesConfig(warm_pool="bench-pool", api_url=cluster.router_url, kubeconfig=cluster.kubeconfig)
        provider = KubernetesProvider(config)
        api = await api_client(config)
        direct = AsyncSandboxClient(
            connection_config=SandboxDirectConnectionConfig(api_url=cluster.router_url), cleanup=False, api_client=api
        )
        claim_direct, claim_provider, run_direct, run_provider = [], [], [], []
        for _ in range(ROUNDS):
            started = time.perf_counter()
            handle = await direct.create_sandbox("bench-pool", shutdown_after_seconds=600)
            await handle.commands.run("true")
            claim_direct.append(time.perf_counter() - started)
            started = time.perf_counter()
            sandbox = await provider.create()
            await sandbox.run("true")
            claim_provider.append(time.perf_counter() - started)
            for _ in range(COMMANDS // ROUNDS):
                run_direct.append(await timed(lambda h=handle: h.commands.run("true")))
                run_provider.append(await timed(lambda s=sandbox: s.run("true")))
            await handle.terminate()
            await sandbox.terminate()
            await asyncio.sleep(0.5)  # let the pool refill, as between real sessions

        async def session(sandbox: object) -> None:
            for _ in range(PER_SESSION):
                await sandbox.run("true")  # type: ignore[attr-defined]

        sandboxes = [await provider.create() for _ in range(SESSIONS)]
        single = await timed(lambda: session(sandboxes[0]))
        many = await timed(lambda: asyncio.gather(*(session(s) for s in sandboxes)))
        for sandbox in sandboxes:
            await sandbox.terminate()
        await direct.close()
        await provider.aclose()
        await api.close()

    def row(name: str, direct_s: list[float], provider_s: list[float]) -> str:
        d, p = statistics.median(direct_s) * 1000, statistics.median(provider_s) * 1000
        return f"| {name} | {d:.1f} ms | {p:.1f} ms | {p / d:.2f} |"

    print("| operation (median) | k8s-agent-sandbox | provider | ratio |")
    print("|---|---|---|---|")
    print(row("claim to first command", claim_direct, claim_provider))
    print(row("one command (`true`)", run_direct, run_provider))
    print()
    print("| sessions x commands | wall time | commands/s |")
    print("|---|---|---|")
    print(f"| 1 x {PER_SESSION} | {single:.2f} s | {PER_SESSION / single:.1f} |")
    print(f"| {SESSIONS} x {PER_SESSION} | {many:.2f} s | {SESSIONS * PER_SESSION / many:.1f} |")


if __name__ == "__main__":
    asyncio.run(main())
