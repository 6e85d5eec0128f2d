"""Soak: steady calls against the real server process for a while; its resident memory and open file
descriptors (read from /proc/<pid>) do not grow from the first quarter of the soak to the last beyond a stated bound.

20 seconds on the local provider in the default run; 10 minutes marked slow."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import pytest

from tests.reliability.conftest import Serve
from tests.reliability.workload import Tally, Worker, connect, make_workers, process_usage, write_token_file

RSS_GROWTH_MIB = 40.0
"""Allowed growth of resident memory from the first quarter of the soak to the last: allocator slack, not a
leak per call (the short form makes ~1,000 calls, the long one ~30,000)."""
FD_GROWTH = 16
"""Allowed growth of open file descriptors from the first quarter to the last (pooled connections come and go)."""


async def soak(serve: Serve, tmp_path: Path, seconds: float) -> None:
    workers = make_workers(4)
    tally = Tally()
    with serve(write_token_file(tmp_path, workers)) as server:

        async def work(worker: Worker, until: float) -> None:
            async with connect(server.mcp_url, worker.token) as client:
                if not worker.sessions:
                    await worker.create_sessions(client, 2)
                await worker.run_calls(client, 10**9, tally, call_limit=60, until=until)

        await asyncio.gather(*(work(worker, time.monotonic() + min(3.0, seconds / 4)) for worker in workers))
        samples = [process_usage(server.pid)]
        deadline = time.monotonic() + seconds
        load = asyncio.gather(*(work(worker, deadline) for worker in workers))
        while not load.done():
            await asyncio.wait([load], timeout=max(1.0, seconds / 20))
            samples.append(process_usage(server.pid))
        await load
        for worker in workers:
            async with connect(server.mcp_url, worker.token) as client:
                await worker.close_sessions(client)
    quarter = max(1, len(samples) // 4)
    early, late = samples[:quarter], samples[-quarter:]
    early_rss, early_fds = max(rss for rss, _ in early), max(fds for _, fds in early)
    late_rss, late_fds = max(rss for rss, _ in late), max(fds for _, fds in late)
    print(
        f"soak {seconds:.0f} s: {tally.summary()}; first quarter {early_rss:.1f} MiB / {early_fds} fds, "
        f"last quarter {late_rss:.1f} MiB / {late_fds} fds ({len(samples)} samples)"
    )
    assert (tally.wrong, tally.broken, dict(tally.refused)) == ([], [], {})
    assert late_rss - early_rss < RSS_GROWTH_MIB, samples
    assert late_fds - early_fds < FD_GROWTH, samples


@pytest.mark.parametrize("backend", ["local"])
async def test_short_soak_memory_and_descriptors_stay_flat(serve: Serve, tmp_path: Path) -> None:
    await soak(serve, tmp_path, 20)


@pytest.mark.slow
@pytest.mark.timeout(900)
async def test_ten_minute_soak_memory_and_descriptors_stay_flat(serve: Serve, tmp_path: Path) -> None:
    await soak(serve, tmp_path, 600)
