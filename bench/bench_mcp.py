"""MCP server benchmark: what the server adds to a sandbox call, over each transport, and how it holds up
under 32 concurrent HTTP clients. Every figure is measured in the same run as its baseline.

Run: .venv/bin/python bench/bench_mcp.py [--provider local|kubernetes|both] [--calls N] [--clients N] [--per-client N]

Per transport: p50/p99 of `execute("true")` and the p50 ratio and difference to `Sandbox.run("true")` called
directly on the same provider. Load: each client has its own token (principal) and its own session.
Targets (issue 4): the MCP layer adds at most 3 ms at p50 over HTTP on loopback; 0 errors; server RSS under
200 MB at 32 sessions.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import secrets
import statistics
import sys
import tempfile
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
from mcp import ClientSession, StdioServerParameters
from mcp.client.stdio import stdio_client
from mcp.client.streamable_http import streamable_http_client
from mcp.shared.memory import create_connected_server_and_client_session

from langchain_kubernetes_agent_sandbox.providers.local.state import temporary_state
from langchain_kubernetes_agent_sandbox.server.config import ServerConfig
from langchain_kubernetes_agent_sandbox.server.runtime import make_provider, running
from langchain_kubernetes_agent_sandbox.testing.server_process import serve_http

Call = Callable[[], Awaitable[None]]


def percentile(samples: list[float], share: float) -> float:
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, int(share * len(ordered)))] * 1000


async def interleaved(paths: dict[str, Call], rounds: int) -> dict[str, list[float]]:
    """Time one call of every path per round, so load from elsewhere on the machine hits all paths alike."""
    samples: dict[str, list[float]] = {label: [] for label in paths}
    for call in paths.values():
        await call()  # warm-up: the default session is created here
    for _ in range(rounds):
        for label, call in paths.items():
            started = time.perf_counter()
            await call()
            samples[label].append(time.perf_counter() - started)
    return samples


def tool_call(client: ClientSession, **arguments: Any) -> Call:
    async def call() -> None:
        result = await client.call_tool("execute", {"command": "true", **arguments})
        if result.isError:
            raise RuntimeError(str(result.content))

    return call


def server_args(settings: dict[str, str]) -> list[str]:
    """Command-line flags for settings; "true" stands for a switch that takes no value."""
    args: list[str] = []
    for name, value in settings.items():
        args += [f"--{name.replace('_', '-')}"] + ([] if value == "true" else [value])
    return args


@contextlib.contextmanager
def http_server(settings: dict[str, str], tokens: list[str]) -> Iterator[tuple[str, int]]:
    """`serve --transport http` as its own process (so its memory can be read); yields URL and pid."""
    folder = Path(tempfile.mkdtemp(prefix="kas-bench-"))
    token_file = folder / "tokens"
    token_file.write_text("".join(f"{token} client{index}\n" for index, token in enumerate(tokens)))
    others = {name: value for name, value in settings.items() if name != "state_dir"}
    with (
        (folder / "server.log").open("wb") as log,
        serve_http(
            f"--token-file={token_file}", *server_args(others), state_dir=settings.get("state_dir"), log=log
        ) as served,
    ):
        yield served.url, served.pid


@contextlib.asynccontextmanager
async def http_client(url: str, token: str) -> AsyncIterator[ClientSession]:
    async with (
        httpx.AsyncClient(headers={"Authorization": f"Bearer {token}"}, timeout=httpx.Timeout(60)) as http,
        streamable_http_client(f"{url}/mcp", http_client=http) as (read, write, _),
        ClientSession(read, write) as client,
    ):
        await client.initialize()
        yield client


def rss_mib(pid: int) -> tuple[float, float]:
    """Current and peak resident memory of a process, in MiB."""
    fields = dict(line.split(":", 1) for line in Path(f"/proc/{pid}/status").read_text().splitlines() if ":" in line)
    return int(fields["VmRSS"].split()[0]) / 1024, int(fields["VmHWM"].split()[0]) / 1024


async def load(url: str, pid: int, tokens: list[str], per_client: int) -> dict[str, float]:
    latencies: list[float] = []
    errors = 0

    async def client_run(token: str) -> None:
        nonlocal errors
        async with http_client(url, token) as client:
            created = await client.call_tool("create_session", {})
            if created.isError or created.structuredContent is None:
                errors += per_client
                return
            session_id = created.structuredContent["session_id"]
            for _ in range(per_client):
                started = time.perf_counter()
                try:
                    result = await client.call_tool("execute", {"command": "true", "session_id": session_id})
                    errors += result.isError
                except Exception:
                    errors += 1
                latencies.append(time.perf_counter() - started)
            memory = rss_mib(pid)
            await client.call_tool("close_session", {"session_id": session_id})
            peaks.append(memory[0])

    peaks: list[float] = []
    started = time.perf_counter()
    await asyncio.gather(*(client_run(token) for token in tokens))
    elapsed = time.perf_counter() - started
    return {
        "calls": len(latencies),
        "errors": errors,
        "seconds": elapsed,
        "throughput": len(latencies) / elapsed,
        "p50": percentile(latencies, 0.5),
        "p99": percentile(latencies, 0.99),
        "rss_at_sessions": max(peaks, default=0.0),
        "rss_peak": rss_mib(pid)[1],
    }


async def bench_provider(
    name: str, settings: dict[str, str], calls: int, clients: int, per_client: int
) -> list[dict[str, Any]]:
    """Prints the provider's table and returns its figures: per path p50 with the direct call as baseline,
    then the load and memory figures (load's p50 against the direct call too)."""
    config = ServerConfig.model_validate({**settings, "principal": "bench", "provider": name})
    print(f"\n== provider {name}: {calls} sequential execute('true') calls per transport")
    provider = make_provider(config)
    sandbox = await provider.create()
    tokens = [secrets.token_hex(16) for _ in range(clients)]
    stdio = StdioServerParameters(
        command=sys.executable,
        args=["-m", "langchain_kubernetes_agent_sandbox", "serve", *server_args(settings)],
        env={**os.environ},
    )

    async def direct() -> None:
        await sandbox.run("true")

    async with contextlib.AsyncExitStack() as stack:
        stack.push_async_callback(provider.aclose)
        stack.push_async_callback(sandbox.terminate)
        in_memory = await stack.enter_async_context(
            create_connected_server_and_client_session(await stack.enter_async_context(running(config)))
        )
        read, write = await stack.enter_async_context(stdio_client(stdio))
        over_stdio = await stack.enter_async_context(ClientSession(read, write))
        await over_stdio.initialize()
        url, pid = stack.enter_context(http_server({**settings, "max_sessions": "4"}, tokens))
        over_http = await stack.enter_async_context(http_client(url, tokens[0]))
        paths = {
            "direct Sandbox.run": direct,
            "MCP in-memory": tool_call(in_memory),
            "MCP stdio": tool_call(over_stdio),
            "MCP streamable HTTP": tool_call(over_http),
        }
        rows = list((await interleaved(paths, calls)).items())
        idle_rss = rss_mib(pid)[0]
        result = await load(url, pid, tokens, per_client)
    baseline = rows[0][1]
    base = statistics.median(baseline) * 1000
    print(f"{'path':<22}{'p50 ms':>9}{'p99 ms':>9}{'ratio':>8}{'added ms':>10}")
    for label, samples in rows:
        p50 = percentile(samples, 0.5)
        print(f"{label:<22}{p50:>9.2f}{percentile(samples, 0.99):>9.2f}{p50 / base:>8.2f}{p50 - base:>10.2f}")
    print(
        f"load: {clients} HTTP clients x {per_client} calls on {clients} sessions: {result['calls']:.0f} calls, "
        f"{result['errors']:.0f} errors, {result['seconds']:.1f} s, {result['throughput']:.1f} calls/s, "
        f"p50 {result['p50']:.1f} ms, p99 {result['p99']:.1f} ms"
    )
    print(
        f"server memory: {idle_rss:.0f} MiB idle, {result['rss_at_sessions']:.0f} MiB with {clients} sessions open, "
        f"peak {result['rss_peak']:.0f} MiB"
    )
    figures: list[dict[str, Any]] = [
        {"figure": f"execute('true') p50, {label}", "value": percentile(samples, 0.5), "unit": "ms", "baseline": base}
        for label, samples in rows[1:]
    ]
    figures.append(
        {
            "figure": f"{clients} HTTP clients x {per_client} calls: p50 ({result['errors']:.0f} errors)",
            "value": result["p50"],
            "unit": "ms",
            "baseline": base,
        }
    )
    figures.append(
        {
            "figure": f"server RSS with {clients} sessions open",
            "value": result["rss_at_sessions"],
            "unit": "MiB",
            "baseline": idle_rss,
        }
    )
    return figures


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--provider", choices=("local", "kubernetes", "both"), default="both")
    parser.add_argument("--calls", type=int, default=100)
    parser.add_argument("--clients", type=int, default=32)
    parser.add_argument("--per-client", type=int, default=20)
    args = parser.parse_args()
    with temporary_state("kas-bench-") as state:
        if args.provider in ("local", "both"):
            asyncio.run(bench_provider("local", {"state_dir": str(state)}, args.calls, args.clients, args.per_client))
    if args.provider in ("kubernetes", "both"):
        from langchain_kubernetes_agent_sandbox.testing.cluster import FakeCluster

        with FakeCluster({"python-pool": args.clients + 2}) as cluster:
            settings = {
                "warm_pool": cluster.pool,
                "api_url": cluster.router_url,
                "kubeconfig": cluster.kubeconfig,
                "connection": "direct",
            }
            asyncio.run(bench_provider("kubernetes", settings, args.calls, args.clients, args.per_client))


if __name__ == "__main__":
    main()
