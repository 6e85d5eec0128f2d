"""deepagents backends compared on the standard suite's own operations: write, read, edit, grep, glob, ls.

    .venv/bin/python bench/bench_adapter.py [--rounds N]

Prints each operation's mean latency per backend and the backend's ratio to the local provider backend,
which is the baseline. Backends: local (`SandboxBackend.local()`), MCP-backed over streamable HTTP on loopback
to the real `serve` command (on the local provider), and the Kubernetes provider on the imitation cluster.
The MCP-backed backend's budget is at most 20% over the local backend.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import ExitStack

from deepagents.backends.sandbox import BaseSandbox

from langchain_kubernetes_agent_sandbox.adapter import (
    ADAPTER_LIMITS,
    McpSandboxBackend,
    SandboxBackend,
    mcp_connect,
)
from langchain_kubernetes_agent_sandbox.providers.kubernetes import KubernetesConfig, KubernetesProvider
from langchain_kubernetes_agent_sandbox.testing import FakeCluster
from langchain_kubernetes_agent_sandbox.testing.server_process import serve_http

ROOT = "/tmp/bench_adapter"
TEXT = "".join(f"line {n}: the quick brown fox {n % 7}\n" for n in range(200))


def operations(backend: BaseSandbox, round_: int) -> dict[str, Callable[[], object]]:
    path = f"{ROOT}/r{round_}/notes.txt"
    return {
        "write": lambda: backend.write(path, TEXT),
        "read": lambda: backend.read(path),
        "edit": lambda: backend.edit(path, "line 10:", "LINE 10:"),
        "grep": lambda: backend.grep("fox 3", ROOT),
        "glob": lambda: backend.glob("**/*.txt", ROOT),
        "ls": lambda: backend.ls(f"{ROOT}/r{round_}"),
    }


def measure(backend: BaseSandbox, rounds: int) -> dict[str, float]:
    """Mean seconds per operation, after one warm-up round."""
    samples: dict[str, list[float]] = {}
    for round_ in range(rounds + 1):
        for name, operation in operations(backend, round_).items():
            started = time.perf_counter()
            result = operation()
            elapsed = time.perf_counter() - started
            if getattr(result, "error", None):
                raise RuntimeError(f"{name} failed: {result.error}")  # type: ignore[attr-defined]
            if round_:
                samples.setdefault(name, []).append(elapsed)
    return {name: statistics.fmean(values) for name, values in samples.items()}


def backends(stack: ExitStack) -> Iterator[tuple[str, BaseSandbox]]:
    yield "local", stack.enter_context(SandboxBackend.local(tempfile.mkdtemp(prefix="kas-bench-", dir="/tmp")))
    served = stack.enter_context(serve_http("--allow-unauthenticated", "--principal=bench"))
    url = served.mcp_url
    yield "mcp (http)", stack.enter_context(McpSandboxBackend(mcp_connect.http(url)))
    cluster = stack.enter_context(FakeCluster({"bench-pool": 1}))
    config = KubernetesConfig(warm_pool="bench-pool", api_url=cluster.router_url, kubeconfig=cluster.kubeconfig)
    provider = KubernetesProvider(config, limits=ADAPTER_LIMITS)
    yield "kubernetes (imitation)", stack.enter_context(SandboxBackend.open(provider, close_provider=True))


def run(rounds: int) -> dict[str, dict[str, float]]:
    """Mean seconds per operation, per backend; "local" is the baseline."""
    results: dict[str, dict[str, float]] = {}
    with ExitStack() as stack:
        for name, backend in backends(stack):
            results[name] = measure(backend, rounds)
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=20)
    args = parser.parse_args()
    results = run(args.rounds)
    baseline = results["local"]
    names = list(baseline)
    print(f"mean latency over {args.rounds} rounds, ms (ratio to local)")
    print(f"{'backend':<24}" + "".join(f"{op:>16}" for op in names) + f"{'all':>16}")
    for backend_name, means in results.items():
        cells = [f"{means[op] * 1000:8.1f} ({means[op] / baseline[op]:4.2f})" for op in names]
        total = sum(means.values()) / sum(baseline.values())
        print(f"{backend_name:<24}" + "".join(f"{cell:>16}" for cell in cells) + f"{total:>15.2f}x")
    mcp_ratio = sum(results["mcp (http)"].values()) / sum(baseline.values())
    verdict = "within" if mcp_ratio <= 1.2 else "OVER"
    print(f"MCP-backed over HTTP: {mcp_ratio:.2f}x the local backend, {verdict} the 1.20x budget")


if __name__ == "__main__":
    main()
