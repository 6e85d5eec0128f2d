"""Faults during load: each fault switch of the imitation cluster is flipped while MCP clients keep calling.
Every call either succeeds with its own result or fails as a typed tool error that explains itself, within its
time limit; nothing hangs; once the fault is cleared, the same clients' calls succeed again."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest

from langchain_kubernetes_agent_sandbox.providers.kubernetes import KubernetesProvider
from langchain_kubernetes_agent_sandbox.server.config import ServerConfig
from langchain_kubernetes_agent_sandbox.testing import FakeCluster
from tests.conftest import impatient_provider
from tests.reliability.workload import KINDS, Tally, connect, make_workers, write_token_file
from tests.server.http_serving import http_server

FAULTS: dict[str, dict[str, Any]] = {
    "claim_never_ready": {"claim_never_ready": True},
    "pool_exhausted": {"pool_exhausted": True},
    "api_500": {"api_status": 500},
    "api_hang": {"api_hang": True},
    "watch_breaks": {"watch_breaks": 3},
    "watch_gone": {"watch_gone": 3},
    "router_502": {"router_status": 502},
    "router_504": {"router_status": 504},
    "slow_runtime": {"runtime_delay": 1.0},
}
CALL_LIMIT = 15.0
"""No call may take longer: the provider's own limits below, plus the command's, plus margin."""


@pytest.fixture
async def provider(fake_cluster: FakeCluster) -> AsyncIterator[KubernetesProvider]:
    async with impatient_provider(fake_cluster, patience=3) as made:
        yield made


@pytest.fixture
def cleared(fake_cluster: FakeCluster) -> Iterator[FakeCluster]:
    yield fake_cluster
    fake_cluster.clear_faults()


@pytest.mark.parametrize("fault", list(FAULTS))
async def test_calls_during_a_fault_fail_typed_and_recover(
    fault: str, cleared: FakeCluster, provider: KubernetesProvider, tmp_path: Path
) -> None:
    cluster = cleared
    before = {claim["metadata"]["name"] for claim in cluster.claims()}
    workers = make_workers(3)
    config = ServerConfig(
        provider="kubernetes", transport="http", token_file=write_token_file(tmp_path, workers), default_timeout=30
    )
    during, after = Tally(), Tally()
    async with http_server(config, provider) as url:

        async def work(index: int) -> None:
            worker = workers[index]
            async with connect(f"{url}/mcp", worker.token) as client:
                async with one_at_a_time:  # each session from a warm pod: three at once would cold-start one
                    await asyncio.to_thread(cluster.wait_for_pool)
                    await worker.create_sessions(client, 1)
                await worker.run_calls(client, 2, Tally(), kinds=KINDS)
                await ready.wait()
                if index == 0:
                    cluster.set_faults(**FAULTS[fault])
                await faulty.wait()
                deadline = time.monotonic() + 1.2
                await worker.run_calls(
                    client, 10**6, during, call_limit=CALL_LIMIT, until=deadline, kinds=(*KINDS, "create_session")
                )
                await ended.wait()
                cluster.clear_faults()
                # The cluster recovered once its pool is refilled; on a loaded machine that takes longer than the
                # provider's impatient claim limit.
                await asyncio.to_thread(cluster.wait_for_pool)
                await worker.forget_lost_sessions(client)
                if not worker.sessions:
                    await worker.create_sessions(client, 1)
                for kind in (*KINDS, "create_session"):
                    await worker.checked_call(client, kind, after, call_limit=CALL_LIMIT)
                await worker.close_sessions(client)

        ready, faulty, ended = (asyncio.Barrier(len(workers)) for _ in range(3))
        one_at_a_time = asyncio.Lock()
        await asyncio.gather(*map(work, range(len(workers))))
    print(f"{fault}: during {during.summary()}; after {after.summary()}")
    assert (during.wrong, during.broken) == ([], []), during.summary()
    assert max(during.latencies) < CALL_LIMIT
    assert (after.ok, after.wrong, after.broken, dict(after.refused)) == (15, [], [], {})
    assert {claim["metadata"]["name"] for claim in cluster.claims()} - before == set(), "claims left behind"
