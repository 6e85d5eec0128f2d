"""Python kernel benchmark (issue 6), on the local provider through an in-memory MCP client.

Run: .venv/bin/python bench/bench_python.py [--rounds N]

* `execute_python` of `x = 1` and of `print(x)` on a warm kernel, against a one-process-per-call run of the same
  code (`execute("python3 -c ...")`, which is how execute_python ran before the kernel), measured interleaved in
  the same run; and the same with `import json, decimal, fractions, statistics` in the cell, where the fresh
  process pays for the imports every call. Target: warm kernel at most 0.3x of one process per call.
* The same at the library level without MCP: the kept kernel against `keep=False`, a fresh `python3` per call
  that still gives the value, figures and traceback the kernel gives.
* A 1024x768 matplotlib figure made in a cell and received as MCP image content. Target: under 300 ms.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import statistics
import subprocess
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

from mcp import ClientSession
from mcp.shared.memory import create_connected_server_and_client_session
from mcp.types import ImageContent

from langchain_kubernetes_agent_sandbox.engine import kernel as python_kernel
from langchain_kubernetes_agent_sandbox.providers.local.state import discard_state
from langchain_kubernetes_agent_sandbox.server.config import ServerConfig
from langchain_kubernetes_agent_sandbox.server.runtime import running

Call = Callable[[], Awaitable[Any]]
IMPORTS = "import json, decimal, fractions, statistics, email.parser, http.client"
FIGURE = (
    "import matplotlib.pyplot as plt\n"
    "fig = plt.figure(figsize=(10.24, 7.68), dpi=100)\n"
    "plt.plot(range(100), [i * i for i in range(100)])\n"
)


def tool(client: ClientSession, name: str, **arguments: Any) -> Call:
    async def call() -> Any:
        result = await client.call_tool(name, arguments)
        if result.isError:
            raise RuntimeError(str(result.content))
        return result

    return call


async def interleaved(paths: dict[str, Call], rounds: int) -> dict[str, float]:
    """Median milliseconds of each path, one call of every path per round so machine load hits all alike."""
    samples: dict[str, list[float]] = {label: [] for label in paths}
    for call in paths.values():
        await call()
    for _ in range(rounds):
        for label, call in paths.items():
            started = time.perf_counter()
            await call()
            samples[label].append(time.perf_counter() - started)
    return {label: statistics.median(values) * 1000 for label, values in samples.items()}


async def measure(rounds: int) -> list[dict[str, Any]]:
    folder = Path(tempfile.mkdtemp(prefix="kas-bench-python-", dir="/tmp"))
    os.chmod(folder, 0o711)
    config = ServerConfig(state_dir=folder, principal="bench")
    rows: list[dict[str, Any]] = []
    try:
        async with running(config) as server, create_connected_server_and_client_session(server) as client:
            await tool(client, "execute_python", code="x = 1")()
            cases = {
                "x = 1": ("x = 1", "x = 1"),
                "print(x)": ("print(x)", "x = 1; print(x)"),
                f"{IMPORTS}; print(x)": (f"{IMPORTS}\nprint(x)", f"{IMPORTS}; x = 1; print(x)"),
            }
            paths: dict[str, Call] = {}
            for label, (warm, fresh) in cases.items():
                paths[f"kernel: {label}"] = tool(client, "execute_python", code=warm)
                paths[f"fresh: {label}"] = tool(client, "execute", command=f"python3 -c '{fresh}'")
            medians = await interleaved(paths, rounds)
            for label in cases:
                kernel, fresh = medians[f"kernel: {label}"], medians[f"fresh: {label}"]
                rows.append(
                    {
                        "benchmark": "python",
                        "figure": f"execute_python `{label}`, warm kernel (p50)",
                        "value": round(kernel, 2),
                        "unit": "ms",
                        "baseline": round(fresh, 2),
                        "ratio": round(kernel / fresh, 2),
                        "target": "<= 0.3x of one process per call",
                    }
                )
            sandbox = (await server.registry.provider.list())[0]
            if sandbox is not None:
                library: dict[str, Call] = {
                    "kept": lambda: python_kernel.run_cell(sandbox, "x = 1", timeout=60, wait=30),
                    "fresh": lambda: python_kernel.run_cell(sandbox, "x = 1", timeout=60, wait=30, keep=False),
                }
                medians = await interleaved(library, rounds)
                rows.append(
                    {
                        "benchmark": "python",
                        "figure": "kernel.run_cell `x = 1`: kept kernel vs keep=False (a fresh python3 per call "
                        "with the same value/figure/traceback handling), no MCP (p50)",
                        "value": round(medians["kept"], 2),
                        "unit": "ms",
                        "baseline": round(medians["fresh"], 2),
                        "ratio": round(medians["kept"] / medians["fresh"], 2),
                        "target": "<= 0.3x of one process per call",
                    }
                )
            if _has_matplotlib():
                figure = tool(client, "execute_python", code=FIGURE)
                result = await figure()
                images = [block for block in result.content if isinstance(block, ImageContent)]
                assert len(images) == 1, "the figure did not come back as an image"
                times = await interleaved({"figure": figure}, rounds)
                rows.append(
                    {
                        "benchmark": "python",
                        "figure": "1024x768 matplotlib figure round trip through MCP (p50)",
                        "value": round(times["figure"], 2),
                        "unit": "ms",
                        "baseline": None,
                        "ratio": None,
                        "target": "< 300 ms",
                    }
                )
    finally:
        discard_state(folder)
    return rows


def _has_matplotlib() -> bool:
    return subprocess.run(["/usr/bin/python3", "-c", "import matplotlib"], check=False).returncode == 0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--rounds", type=int, default=30)
    args = parser.parse_args()
    logging.disable(logging.INFO)
    for row in asyncio.run(measure(args.rounds)):
        baseline = f"  (one process per call {row['baseline']} ms, ratio {row['ratio']}x)" if row["baseline"] else ""
        print(f"{row['figure']}: {row['value']} ms{baseline}  target {row['target']}")


if __name__ == "__main__":
    main()
