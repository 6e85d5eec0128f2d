"""Every fault switch of the imitation cluster: a typed error in the configured time, a message naming the
cause, no leaked claim, and the next call working once the fault is gone."""

from __future__ import annotations

import asyncio
import re
import time
from collections.abc import AsyncIterator

import pytest

from langchain_kubernetes_agent_sandbox import (
    BackendUnavailableError,
    InvalidArgumentError,
    Sandbox,
    SandboxGoneError,
    TimedOutError,
)
from langchain_kubernetes_agent_sandbox.providers.kubernetes import KubernetesProvider
from langchain_kubernetes_agent_sandbox.testing import FakeCluster
from tests.conftest import impatient_provider

LABEL = "langchain-kubernetes-agent-sandbox/test=faults"


@pytest.fixture
async def provider(fake_cluster: FakeCluster) -> AsyncIterator[KubernetesProvider]:
    async with impatient_provider(fake_cluster, patience=2) as made:
        yield made


@pytest.fixture
async def oneshot_provider(fake_cluster: FakeCluster) -> AsyncIterator[KubernetesProvider]:
    """Commands as one `/execute` request each, through the router every time (no agent)."""
    async with impatient_provider(fake_cluster, patience=2, agent_port=None) as made:
        yield made


def claims_left(cluster: FakeCluster) -> list[str]:
    return [claim["metadata"]["name"] for claim in cluster.claims(LABEL)]


async def create(provider: KubernetesProvider) -> Sandbox:
    return await provider.create(labels={"test": "faults"})


async def test_claim_never_ready_times_out_and_rolls_back(
    provider: KubernetesProvider, fake_cluster: FakeCluster
) -> None:
    fake_cluster.set_faults(claim_never_ready=True)
    started = time.monotonic()
    with pytest.raises(TimedOutError, match="python-pool") as caught:
        await create(provider)
    assert time.monotonic() - started < 6
    assert "ready replicas" in str(caught.value)
    await asyncio.sleep(0.3)
    assert claims_left(fake_cluster) == []
    fake_cluster.clear_faults()
    assert (await (await create(provider)).run("echo back")).stdout == "back\n"


async def test_exhausted_pool_times_out_naming_the_pool(
    provider: KubernetesProvider, fake_cluster: FakeCluster
) -> None:
    fake_cluster.set_faults(pool_exhausted=True)
    with pytest.raises(TimedOutError, match="warm pool 'python-pool' in namespace 'default'"):
        await create(provider)
    await asyncio.sleep(0.3)
    assert claims_left(fake_cluster) == []
    fake_cluster.clear_faults()
    assert (await (await create(provider)).run("true")).ok


async def test_api_server_errors_are_backend_unavailable(
    provider: KubernetesProvider, fake_cluster: FakeCluster
) -> None:
    fake_cluster.set_faults(api_status=500)
    started = time.monotonic()
    with pytest.raises(BackendUnavailableError, match="HTTP 500"):
        await create(provider)
    assert time.monotonic() - started < 3
    fake_cluster.clear_faults()
    assert claims_left(fake_cluster) == []
    assert (await (await create(provider)).run("true")).ok


async def test_an_api_server_still_starting_is_waited_for(
    provider: KubernetesProvider, fake_cluster: FakeCluster
) -> None:
    """A 503 means the request was not served: claims, lookups and listings ask again until it passes."""
    fake_cluster.set_faults(api_unavailable=3)
    sandbox = await create(provider)
    assert (await sandbox.run("echo claimed")).stdout == "claimed\n"
    fake_cluster.set_faults(api_unavailable=2)
    assert (await provider.get(sandbox.id)).id == sandbox.id
    fake_cluster.set_faults(api_unavailable=2)
    assert [found.id for found in await provider.list({"test": "faults"})] == [sandbox.id]
    assert claims_left(fake_cluster) == [sandbox.id]


async def test_an_api_server_that_stays_unavailable_is_backend_unavailable_within_the_api_timeout(
    provider: KubernetesProvider, fake_cluster: FakeCluster
) -> None:
    fake_cluster.set_faults(api_status=503)
    started = time.monotonic()
    with pytest.raises(BackendUnavailableError, match="HTTP 503"):
        await create(provider)
    assert time.monotonic() - started < 3
    fake_cluster.clear_faults()
    assert claims_left(fake_cluster) == []


async def test_hanging_api_server_times_out(provider: KubernetesProvider, fake_cluster: FakeCluster) -> None:
    fake_cluster.set_faults(api_hang=True)
    started = time.monotonic()
    with pytest.raises(TimedOutError, match="API server"):
        await create(provider)
    assert time.monotonic() - started < 5
    fake_cluster.clear_faults()
    await asyncio.sleep(0.3)
    assert claims_left(fake_cluster) == []
    assert (await (await create(provider)).run("true")).ok


@pytest.mark.parametrize("fault", [{"watch_breaks": 1}, {"watch_gone": 1}])
async def test_broken_or_expired_watch_is_survived(
    provider: KubernetesProvider, fake_cluster: FakeCluster, fault: dict[str, int]
) -> None:
    fake_cluster.set_faults(**fault)
    sandbox = await create(provider)
    assert (await sandbox.run("echo ok")).stdout == "ok\n"
    assert all(value == 0 for key, value in fake_cluster.set_faults().items() if key in fault)


async def test_runtime_killed_mid_command_is_sandbox_gone(
    provider: KubernetesProvider, fake_cluster: FakeCluster
) -> None:
    sandbox = await create(provider)
    [claim] = [claim for claim in fake_cluster.claims() if claim["metadata"]["name"] == sandbox.id]
    running = asyncio.create_task(sandbox.run("sleep 30", timeout=40))
    await asyncio.sleep(0.5)
    fake_cluster.kill_runtime(claim["status"]["sandbox"]["name"])
    started = time.monotonic()
    with pytest.raises(SandboxGoneError, match="lost its pod"):
        await running
    assert time.monotonic() - started < 3
    await sandbox.terminate()
    assert sandbox.id not in claims_left(fake_cluster)
    assert (await (await create(provider)).run("true")).ok


@pytest.mark.parametrize(("status", "error"), [(502, BackendUnavailableError), (504, TimedOutError)])
async def test_router_errors_on_files(
    provider: KubernetesProvider, fake_cluster: FakeCluster, status: int, error: type[Exception]
) -> None:
    sandbox = await create(provider)
    await sandbox.write_file("a.txt", b"x")
    fake_cluster.set_faults(router_status=status)
    started = time.monotonic()
    with pytest.raises(error, match="router"):
        await sandbox.write_file("b.txt", b"y")
    assert time.monotonic() - started < 4
    fake_cluster.clear_faults()
    assert await sandbox.read_file("a.txt") == b"x"


async def test_router_timeout_on_a_run_is_a_timed_out_result(
    oneshot_provider: KubernetesProvider, fake_cluster: FakeCluster
) -> None:
    sandbox = await create(oneshot_provider)
    fake_cluster.set_faults(router_status=504)
    result = await sandbox.run("echo never", timeout=60)
    assert result.timed_out
    assert result.exit_code == 124
    waited = re.search(r"no answer after ([\d.]+) s \(the command's limit was 60 s\)", result.stderr)
    assert waited is not None, result.stderr
    assert float(waited[1]) < 30, "the message must give the time waited (the 504 came at once), not the limit"
    fake_cluster.clear_faults()
    assert (await sandbox.run("echo again")).stdout == "again\n"


async def test_slow_runtime_ends_the_run_at_limit_plus_margin(
    oneshot_provider: KubernetesProvider, fake_cluster: FakeCluster
) -> None:
    sandbox = await create(oneshot_provider)
    fake_cluster.set_faults(runtime_delay=10)
    started = time.monotonic()
    result = await sandbox.run("echo slow", timeout=1)
    assert result.timed_out
    assert result.exit_code == 124
    assert time.monotonic() - started < 4
    fake_cluster.clear_faults()
    assert (await sandbox.run("echo fast")).stdout == "fast\n"


async def test_limit_beyond_the_router_is_refused_with_the_reason(oneshot_provider: KubernetesProvider) -> None:
    sandbox = await create(oneshot_provider)
    with pytest.raises(InvalidArgumentError, match="proxy timeout"):
        await sandbox.run("true", timeout=600)
