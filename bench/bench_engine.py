"""Execution engine benchmark (issue 11): each figure against an anchor measured in the same run, interleaved so
that load from elsewhere on the machine hits both alike.

Run: .venv/bin/python bench/bench_engine.py [--rounds N]

- `execute("true")` through a real MCP stdio client and server on the local provider, against a bare bubblewrap
  spawn of `true` (read-only system folders, all namespaces unshared). Target: p50 at most 1.0x.
- `execute_python("print(x)")` on a warm kernel through MCP stdio, against a Jupyter kernel's round trip through
  `jupyter_client` (ipykernel; only in the benchmark's environment: `pip install ipykernel jupyter_client`).
  Target: p50 at most 1.0x.
- Streaming: how long after `echo first` wrote its line (by the line's own timestamp) the MCP client holds it as
  a progress notification, while the command goes on for 3 s. Target: within 250 ms.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import statistics
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

from mcp import ClientSession, StdioServerParameters
from mcp.client.stdio import stdio_client

from langchain_kubernetes_agent_sandbox.engine import kernel
from langchain_kubernetes_agent_sandbox.providers.local import LocalProvider
from langchain_kubernetes_agent_sandbox.providers.local.bubblewrap import SYSTEM_FOLDERS
from langchain_kubernetes_agent_sandbox.providers.local.state import temporary_state
from langchain_kubernetes_agent_sandbox.sandbox import Sandbox


def bare_bwrap() -> list[str]:
    argv = ["bwrap", "--unshare-all", "--die-with-parent", "--proc", "/proc", "--dev", "/dev"]
    for folder in SYSTEM_FOLDERS:
        if os.path.islink(folder):
            argv += ["--symlink", os.readlink(folder), folder]
        elif os.path.isdir(folder):
            argv += ["--ro-bind", folder, folder]
    return [*argv, "true"]


@contextlib.asynccontextmanager
async def stdio_session(state: Path) -> AsyncIterator[ClientSession]:
    parameters = StdioServerParameters(
        command=sys.executable,
        args=["-m", "langchain_kubernetes_agent_sandbox", "serve"],
        env={**os.environ, "KUBERNETES_AGENT_SANDBOX_STATE_DIR": str(state)},
    )
    quiet = open(os.devnull, "w")  # noqa: SIM115, ASYNC230 - the server's log, for as long as it runs
    try:
        async with stdio_client(parameters, errlog=quiet) as (read, write), ClientSession(read, write) as client:
            await client.initialize()
            yield client
    finally:
        quiet.close()


async def tool(client: ClientSession, name: str, **arguments: Any) -> Any:
    result = await client.call_tool(name, arguments)
    if result.isError:
        raise RuntimeError(f"{name} failed: {result.content}")
    return result.structuredContent


def p50(samples: list[float]) -> float:
    return statistics.median(samples) * 1000


Figure = tuple[str, float, float | None, str]
"""A figure's name, its value in ms, and the anchor's value in ms (None: no anchor) with the anchor's name."""


async def timed(call: Callable[[], Awaitable[Any]]) -> float:
    started = time.perf_counter()
    await call()
    return time.perf_counter() - started


async def bench_execute(client: ClientSession, sandbox: Sandbox, rounds: int) -> list[Figure]:
    """Through MCP and, to show what the engine itself costs, `Sandbox.run` on the same provider; MCP's own
    round trip (`ping`) is measured alongside, since the client validates every result against its schema."""
    argv = bare_bwrap()
    samples: dict[str, list[float]] = {"mcp": [], "direct": [], "bare": [], "ping": []}
    await tool(client, "execute", command="true")
    await sandbox.run("true")
    for _ in range(rounds):
        samples["mcp"].append(await timed(lambda: tool(client, "execute", command="true")))
        samples["direct"].append(await timed(lambda: sandbox.run("true")))
        samples["bare"].append(await timed(lambda: asyncio.to_thread(subprocess.run, argv, check=True)))
        samples["ping"].append(await timed(client.send_ping))
    bare = p50(samples["bare"])
    return [
        ('execute("true") through MCP stdio (p50), target <= 1.0x', p50(samples["mcp"]), bare, "bare bwrap spawn"),
        ('Sandbox.run("true"), the engine alone (p50)', p50(samples["direct"]), bare, "bare bwrap spawn"),
        ("MCP stdio ping (p50), the transport alone", p50(samples["ping"]), None, ""),
    ]


def jupyter_round_trip() -> Any:
    """A started ipykernel and a function that runs `print(x)` in it and waits for its reply, or None."""
    try:
        from jupyter_client.manager import start_new_kernel  # type: ignore[import-not-found,unused-ignore]
    except ImportError:
        return None
    manager, kernel = start_new_kernel(kernel_name="python3")
    kernel.execute_interactive("x = 1", timeout=30)

    def run() -> None:
        reply = kernel.execute_interactive("print(x)", timeout=30, output_hook=lambda _message: None)
        if reply["content"]["status"] != "ok":
            raise RuntimeError(reply)

    return manager, kernel, run


async def bench_python(client: ClientSession, sandbox: Sandbox, rounds: int) -> list[Figure]:
    jupyter = await asyncio.to_thread(jupyter_round_trip)
    if jupyter is None:
        print("  execute_python: not measured, jupyter_client is missing: pip install ipykernel jupyter_client")
        return []
    manager, jupyter_kernel, run = jupyter
    try:
        await tool(client, "execute_python", code="x = 1")
        await kernel.run_cell(sandbox, "x = 1", timeout=60, wait=30)
        samples: dict[str, list[float]] = {"mcp": [], "direct": [], "jupyter": []}
        for _ in range(rounds):
            samples["mcp"].append(await timed(lambda: tool(client, "execute_python", code="print(x)")))
            samples["direct"].append(await timed(lambda: kernel.run_cell(sandbox, "print(x)", timeout=60, wait=30)))
            samples["jupyter"].append(await timed(lambda: asyncio.to_thread(run)))
        anchor = p50(samples["jupyter"])
        name = "Jupyter kernel via jupyter_client"
        mcp = 'execute_python("print(x)"), warm kernel, MCP stdio (p50), target <= 1.0x'
        return [
            (mcp, p50(samples["mcp"]), anchor, name),
            ('kernel.run_cell("print(x)"), the engine alone (p50)', p50(samples["direct"]), anchor, name),
        ]
    finally:
        jupyter_kernel.stop_channels()
        manager.shutdown_kernel(now=True)


async def bench_streaming(client: ClientSession, rounds: int) -> list[Figure]:
    delays: list[float] = []
    for _ in range(rounds):
        seen: list[float] = []

        async def progress(
            _progress: float, _total: float | None, message: str | None, seen: list[float] = seen
        ) -> None:
            for text in (message or "").splitlines():
                if text.startswith("first ") and not seen:
                    seen.append(time.time() - float(text.split()[1]))

        result = await client.call_tool(
            "execute",
            {"command": "echo first $(date +%s.%N); sleep 3; echo second"},
            progress_callback=progress,
        )
        if result.isError or not seen:
            raise RuntimeError(f"no progress with the first line: {result.content}")
        delays.append(seen[0])
    return [
        (
            f"streaming: first line seen by the MCP client after it was written (p50; max "
            f"{max(delays) * 1000:.1f} ms), target <= 250 ms",
            p50(delays),
            None,
            "",
        )
    ]


async def measure(rounds: int, stream_rounds: int = 3) -> list[Figure]:
    with temporary_state("kas-bench-engine-") as state:
        provider = LocalProvider(state)
        sandbox = await provider.create()
        try:
            async with stdio_session(state) as client:
                figures = await bench_execute(client, sandbox, rounds)
                figures += await bench_python(client, sandbox, rounds)
                figures += await bench_streaming(client, stream_rounds)
        finally:
            await sandbox.terminate()
            await provider.aclose()
    return figures


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=60)
    parser.add_argument("--stream-rounds", type=int, default=3)
    args = parser.parse_args()
    print(f"== engine: {args.rounds} rounds, local provider, load {os.getloadavg()[0]:.2f}")
    for name, value, anchor, anchor_name in await measure(args.rounds, args.stream_rounds):
        against = f"   {anchor_name} {anchor:.2f} ms, ratio {value / anchor:.2f}" if anchor else ""
        print(f"  {name}: {value:.2f} ms{against}")


if __name__ == "__main__":
    asyncio.run(main())
