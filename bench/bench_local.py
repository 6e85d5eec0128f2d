"""Local provider benchmark: isolation cost against bare processes and plain file I/O, in the same run.

Run: .venv/bin/python bench/bench_local.py [--runs N]
Each figure is a median over N runs, printed with its ratio to the baseline measured just before it.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import platform
import statistics
import subprocess
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

from langchain_kubernetes_agent_sandbox.providers.local import LocalProvider
from langchain_kubernetes_agent_sandbox.providers.local.state import temporary_state

MIB = 1024 * 1024


def median_ms(samples: list[float]) -> float:
    return statistics.median(samples) * 1000


def time_sync(action: Callable[[], object], runs: int) -> list[float]:
    samples = []
    for _ in range(runs):
        started = time.perf_counter()
        action()
        samples.append(time.perf_counter() - started)
    return samples


async def time_async(action: Callable[[], Awaitable[object]], runs: int) -> list[float]:
    samples = []
    for _ in range(runs):
        started = time.perf_counter()
        await action()
        samples.append(time.perf_counter() - started)
    return samples


def host_round_trip(folder: Path, data: bytes) -> None:
    path = folder / "blob"
    path.write_bytes(data)
    assert path.read_bytes() == data


Row = tuple[str, float, float, str]
"""(operation, median ms, baseline median ms, target)."""


async def measure(runs: int) -> tuple[list[Row], str]:
    """The rows of the table and the provider's isolation description."""
    rows: list[Row] = []
    with temporary_state("kas-bench-") as state:
        provider = LocalProvider(state)
        sandbox = await provider.create()
        await sandbox.run("true")

        bare_true = median_ms(time_sync(lambda: subprocess.run(["/bin/sh", "-c", "true"], check=True), runs))
        created = await time_async(provider.create, runs)
        rows.append(("create a sandbox", median_ms(created), bare_true, "< 50 ms"))
        in_sandbox = median_ms(await time_async(lambda: sandbox.run("true"), runs))
        rows.append(("run `true`", in_sandbox, bare_true, "adds <= 10 ms"))

        python = ["/usr/bin/python3", "-c", "print(1)"]
        bare_python = median_ms(time_sync(lambda: subprocess.run(python, check=True, capture_output=True), runs))
        sandboxed_python = median_ms(await time_async(lambda: sandbox.run("python3 -c 'print(1)'"), runs))
        rows.append(("run `python3 -c print(1)`", sandboxed_python, bare_python, "adds <= 10 ms"))

        for size in (1 * MIB, 10 * MIB):
            data = os.urandom(size)

            async def round_trip(data: bytes = data) -> None:
                await sandbox.write_file("blob", data)
                assert await sandbox.read_file("blob") == data

            with tempfile.TemporaryDirectory(dir="/tmp") as plain:
                baseline = median_ms(time_sync(lambda data=data, plain=plain: host_round_trip(Path(plain), data), runs))
            measured = median_ms(await time_async(round_trip, runs))
            label = f"write+read {size // MIB} MiB ({2 * size / MIB / (measured / 1000):.0f} MB/s)"
            rows.append((label, measured, baseline, ">= 200 MB/s"))
    return rows, provider.isolation


async def main(runs: int) -> None:
    rows, isolation = await measure(runs)
    print(f"Local provider, median of {runs} runs; {isolation}")
    machine = f"{platform.machine()}, {os.cpu_count()} cores, Linux {platform.release()}"
    print(f"Machine: {machine}, Python {platform.python_version()}")
    print()
    print("| operation | median ms | baseline ms | ratio | added ms | target |")
    print("|---|---:|---:|---:|---:|---|")
    for name, measured, baseline, target in rows:
        ratio, added = measured / baseline, measured - baseline
        print(f"| {name} | {measured:.2f} | {baseline:.2f} | {ratio:.1f}x | {added:+.2f} | {target} |")
    print()
    print(
        "Baselines: `subprocess.run(['/bin/sh','-c','true'])` for create and `true`; the host's "
        "/usr/bin/python3 for the Python row; a plain write and read of the same bytes in a host folder for files."
    )


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--runs", type=int, default=50)
    asyncio.run(main(parser.parse_args().runs))
