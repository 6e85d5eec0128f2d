"""Fork benchmark: forking a local session with a 100 MiB workspace, against `cp -a` of the same folder on the host.

Run: .venv/bin/python bench/bench_fork.py [--runs N]
Each figure is a median over N runs (warm page cache on both sides), printed with its ratio to the baseline
measured in the same run. The fork's figure is the whole `LocalProvider.fork`: a new sandbox (its disk image made
and mounted) and the copy inside its bubblewrap. The streamed copy is the path Kubernetes sessions take (a tar
stream from one sandbox's agent to the other's), measured here between two local sandboxes.
"""

from __future__ import annotations

import argparse
import asyncio
import shutil
import statistics
import subprocess
import tempfile
import time
from pathlib import Path

from langchain_kubernetes_agent_sandbox.engine.workspace_copy import copy_workspace
from langchain_kubernetes_agent_sandbox.providers.local import LocalProvider
from langchain_kubernetes_agent_sandbox.providers.local.state import temporary_state

MIB = 1024 * 1024
WORKSPACE = (
    "python3 - <<'EOF'\n"
    "import os\n"
    "for i in range(80):\n"
    "    open(f'/app/large-{i}.bin', 'wb').write(os.urandom(1024 * 1024))\n"
    "os.makedirs('/app/src/pkg', exist_ok=True)\n"
    "for i in range(5120):\n"
    "    open(f'/app/src/pkg/module_{i}.py', 'wb').write(os.urandom(4096))\n"
    "EOF"
)
"""100 MiB: 80 files of 1 MiB and 5120 files of 4 KiB (a checkout's worth of small files)."""

COUNT = "find /app -type f -printf '%s\\n' | awk '{ bytes += $1 } END { print NR, bytes }'"
"""The files of /app and their bytes, which a fork must have as its source has them."""
Row = tuple[str, float, float, str]
"""(figure, median ms, baseline median ms, what the baseline is)."""


def median_ms(samples: list[float]) -> float:
    return statistics.median(samples) * 1000


def host_copy_ms(folder: Path, runs: int, into: str) -> float:
    """`cp -a` of `folder` into a new folder under `into`."""
    samples = []
    for _ in range(runs):
        with tempfile.TemporaryDirectory(dir=into) as target:
            started = time.perf_counter()
            subprocess.run(["cp", "-a", f"{folder}/.", target], check=True)
            samples.append(time.perf_counter() - started)
    return median_ms(samples)


async def measure(runs: int) -> list[Row]:
    with temporary_state("kas-bench-fork-") as state:
        provider = LocalProvider(state)
        source = await provider.create()
        made = await source.run(WORKSPACE, timeout=300)
        assert made.exit_code == 0, made.stderr
        used = (await source.run("du -sm /app | cut -f1")).stdout.strip()
        workspace = provider.state.mounts(source.id).workspace
        on_disk = host_copy_ms(workspace, runs, "/tmp")
        in_memory = host_copy_ms(workspace, runs, "/dev/shm")

        forks = []
        for _ in range(runs):
            started = time.perf_counter()
            fork = await provider.fork(source, max_bytes=1024 * MIB)
            forks.append(time.perf_counter() - started)
            assert (await fork.run(COUNT)).stdout == (await source.run(COUNT)).stdout, "the fork missed files"
            await fork.terminate()

        streams = []
        for _ in range(runs):
            target = await provider.create()
            started = time.perf_counter()
            await copy_workspace(source, target, max_bytes=1024 * MIB)
            streams.append(time.perf_counter() - started)
            assert (await target.run(COUNT)).stdout == (await source.run(COUNT)).stdout, "the copy missed files"
            await target.terminate()
        await source.terminate()
    shutil.rmtree(state, ignore_errors=True)
    disk, memory = f"host `cp -a` of the same folder to {_filesystem('/tmp')}", "host `cp -a` to tmpfs (/dev/shm)"
    fork_ms, stream_ms = median_ms(forks), median_ms(streams)
    return [
        (f"fork_session of a {used} MiB workspace (local: new sandbox + copy)", fork_ms, on_disk, disk),
        (f"fork_session of a {used} MiB workspace (local: new sandbox + copy)", fork_ms, in_memory, memory),
        (f"streamed copy of {used} MiB between two sandboxes' agents (Kubernetes' path)", stream_ms, on_disk, disk),
    ]


def _filesystem(path: str) -> str:
    found = subprocess.run(["df", "--output=fstype", path], capture_output=True, text=True, check=True).stdout
    return f"{path} ({found.split()[-1]})"


async def main(runs: int) -> None:
    rows = await measure(runs)
    print(f"Fork, median of {runs} runs")
    print()
    print("| figure | median ms | baseline ms | ratio | baseline |")
    print("|---|---:|---:|---:|---|")
    for name, measured, baseline, label in rows:
        print(f"| {name} | {measured:.0f} | {baseline:.0f} | {measured / baseline:.2f}x | {label} |")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--runs", type=int, default=5)
    asyncio.run(main(parser.parse_args().runs))
