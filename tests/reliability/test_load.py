"""Load: many concurrent MCP clients over streamable HTTP, each call checking its own result, on the local
provider and on the imitation cluster; nothing is left behind afterwards.

Short form in the default run; the issue's full size (32 clients, 50 sessions, 2,000 calls) is marked slow:
`.venv/bin/python -m pytest tests/reliability tests/security -m slow`.
"""

from __future__ import annotations

import statistics
import time
from pathlib import Path

import pytest

from tests.reliability.conftest import Alive, Serve
from tests.reliability.workload import make_workers, processes_mentioning, run_load, write_token_file


async def check_load(
    serve: Serve, alive: Alive, tmp_path: Path, state_dir: Path, *, clients: int, sessions: int, calls: int
) -> None:
    before = alive()
    workers = make_workers(clients)
    with serve(write_token_file(tmp_path, workers)) as server:
        started = time.monotonic()
        tally = await run_load(server.mcp_url, workers, sessions, calls)
        elapsed = time.monotonic() - started
    print(
        f"{clients} clients, {sessions} sessions: {tally.summary()} in {elapsed:.1f} s, "
        f"median {statistics.median(tally.latencies) * 1000:.0f} ms"
    )
    assert tally.calls == calls
    assert (tally.ok, tally.wrong, tally.broken, dict(tally.refused)) == (calls, [], [], {})
    assert alive() - before == set(), "sandboxes or claims left behind"
    assert processes_mentioning(str(state_dir)) == [], "sandbox processes left running"


async def test_concurrent_clients_each_get_their_own_results(
    serve: Serve, alive: Alive, tmp_path: Path, state_dir: Path
) -> None:
    await check_load(serve, alive, tmp_path, state_dir, clients=8, sessions=12, calls=200)


@pytest.mark.slow
@pytest.mark.timeout(1200)
async def test_32_clients_50_sessions_2000_calls(serve: Serve, alive: Alive, tmp_path: Path, state_dir: Path) -> None:
    await check_load(serve, alive, tmp_path, state_dir, clients=32, sessions=50, calls=2000)
