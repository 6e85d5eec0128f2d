"""Kubernetes provider overhead against `k8s-agent-sandbox` used directly, on the imitation cluster, in one run.

    .venv/bin/python bench/bench_kubernetes.py [--rounds 16] [--commands 200]

Prints claim-to-first-command and per-command latency (median) for both, their ratio, and the provider's
throughput with 1 and 16 concurrent sessions of 20 commands each. A third command row sends the provider's
in-pod wrapper (`timeout -s KILL ... /bin/sh -c ...`) through the client directly, which splits the provider's
overhead into what the wrapper's two processes cost in the pod and what the provider's own code costs.

Fairness: the direct baseline does what a user of the client does for the same operation
(`create_sandbox(pool, shutdown_after_seconds=...)` then `commands.run("true")`, on one shared
`AsyncSandboxClient` with the same Kubernetes API client settings). Direct and provider alternate which goes
first in every round and every command pair, and each claim waits until the warm pool has had time to refill,
so neither side pays for the pod start the other one triggered.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import platform
import statistics
import time
from collections.abc import Awaitable, Callable

from k8s_agent_sandbox.async_sandbox_client import AsyncSandboxClient
from k8s_agent_sandbox.models import SandboxDirectConnectionConfig

from langchain_kubernetes_agent_sandbox.providers.kubernetes import KubernetesConfig, KubernetesProvider, commands
from langchain_kubernetes_agent_sandbox.providers.kubernetes.connection import api_client
from langchain_kubernetes_agent_sandbox.testing import FakeCluster

SESSIONS, PER_SESSION = 16, 20
REFILL_SECONDS = 1.5
"""Pause before each timed claim: the imitation starts a replacement pod (a Python process) per claim."""


async def timed(action: Callable[[], Awaitable[object]]) -> float:
    started = time.perf_counter()
    await action()
    return time.perf_counter() - started


def machine() -> str:
    model = ""
    try:
        with open("/proc/cpuinfo") as cpuinfo:
            model = next((line.split(":", 1)[1].strip() for line in cpuinfo if line.startswith("model name")), "")
    except OSError:
        pass
    load = ", ".join(f"{value:.1f}" for value in os.getloadavg())
    return (
        f"{os.cpu_count()} cores {model or platform.machine()}, {platform.system()} {platform.release()}, load {load}"
    )


async def main(rounds: int, command_count: int) -> None:
    with FakeCluster({"bench-pool": SESSIONS + 2}) as cluster:
        config = KubernetesConfig(warm_pool="bench-pool", api_url=cluster.router_url, kubeconfig=cluster.kubeconfig)
        provider = KubernetesProvider(config)
        api = await api_client(config)
        direct = AsyncSandboxClient(
            connection_config=SandboxDirectConnectionConfig(api_url=cluster.router_url), cleanup=False, api_client=api
        )

        async def claim_direct() -> object:
            handle = await direct.create_sandbox("bench-pool", shutdown_after_seconds=600)
            await handle.commands.run("true")
            return handle

        async def claim_provider() -> object:
            sandbox = await provider.create(lifetime=600)
            await sandbox.run("true")
            return sandbox

        # One untimed claim each: connections, imports and caches warm on both sides.
        for claim in (claim_direct, claim_provider):
            await (await claim()).terminate()  # type: ignore[attr-defined]
        claims: dict[str, list[float]] = {"direct": [], "provider": []}
        runs: dict[str, list[float]] = {"direct": [], "provider": [], "wrapped": []}
        wrapped = commands.wrap("true", provider.limits.default_timeout, "/app", {})
        per_round = max(1, command_count // rounds)
        for number in range(rounds):
            order = [("direct", claim_direct), ("provider", claim_provider)]
            if number % 2:
                order.reverse()
            made: dict[str, object] = {}
            for name, claim in order:
                await asyncio.sleep(REFILL_SECONDS)
                started = time.perf_counter()
                made[name] = await claim()
                claims[name].append(time.perf_counter() - started)
            handle, sandbox = made["direct"], made["provider"]
            calls = {
                "direct": lambda h=handle: h.commands.run("true"),  # type: ignore[attr-defined]
                "provider": lambda s=sandbox: s.run("true"),  # type: ignore[attr-defined]
                "wrapped": lambda h=handle: h.commands.run(wrapped),  # type: ignore[attr-defined]
            }
            for index in range(per_round):
                names = ["direct", "provider", "wrapped"]
                if index % 2 != number % 2:
                    names.reverse()
                for name in names:
                    runs[name].append(await timed(calls[name]))
            await handle.terminate()  # type: ignore[attr-defined]
            await sandbox.terminate()  # type: ignore[attr-defined]

        async def session(sandbox: object) -> None:
            for _ in range(PER_SESSION):
                await sandbox.run("true")  # type: ignore[attr-defined]

        await asyncio.sleep(SESSIONS * 0.3)  # let the pool refill before taking all of it
        sandboxes = [await provider.create() for _ in range(SESSIONS)]
        single = await timed(lambda: session(sandboxes[0]))
        many = await timed(lambda: asyncio.gather(*(session(s) for s in sandboxes)))
        for sandbox in sandboxes:
            await sandbox.terminate()
        await direct.close()
        await provider.aclose()
        await api.close()

    def row(name: str, samples: dict[str, list[float]], direct: str = "direct") -> str:
        d, p = statistics.median(samples[direct]) * 1000, statistics.median(samples["provider"]) * 1000
        return f"| {name} | {d:.1f} ms | {p:.1f} ms | {p / d:.2f} | {len(samples['provider'])} |"

    print(f"machine: {machine()}")
    print()
    print("| operation (median) | k8s-agent-sandbox | provider | ratio | samples each |")
    print("|---|---|---|---|---|")
    print(row("claim to first command", claims))
    print(row("one command (`true`)", runs))
    print(row("one command, direct sending the provider's wrapper", runs, "wrapped"))
    print()
    print("| sessions x commands | wall time | commands/s |")
    print("|---|---|---|")
    print(f"| 1 x {PER_SESSION} | {single:.2f} s | {PER_SESSION / single:.1f} |")
    print(f"| {SESSIONS} x {PER_SESSION} | {many:.2f} s | {SESSIONS * PER_SESSION / many:.1f} |")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=16, help="claims per side (default 16)")
    parser.add_argument("--commands", type=int, default=200, help="commands per side (default 200)")
    arguments = parser.parse_args()
    asyncio.run(main(arguments.rounds, arguments.commands))
