"""Expiry on Kubernetes: the exact expiry is the provider's to report and enforce; the claim's whole-second
shutdownTime is a backstop that never falls before it."""

from __future__ import annotations

import asyncio
import calendar
import time
from collections.abc import AsyncIterator
from typing import Any

import pytest

from langchain_kubernetes_agent_sandbox import NotFoundError
from langchain_kubernetes_agent_sandbox.providers.kubernetes import KubernetesConfig, KubernetesProvider
from langchain_kubernetes_agent_sandbox.providers.kubernetes.claims import BACKSTOP_MARGIN, EXPIRY_LABEL
from langchain_kubernetes_agent_sandbox.testing import FakeCluster


@pytest.fixture
async def provider(fake_cluster: FakeCluster) -> AsyncIterator[KubernetesProvider]:
    config = KubernetesConfig(
        warm_pool=fake_cluster.pool, api_url=fake_cluster.router_url, kubeconfig=fake_cluster.kubeconfig
    )
    made = KubernetesProvider(config)
    yield made
    for sandbox in await made.list():
        await sandbox.terminate()
    await made.aclose()


def claim_of(cluster: FakeCluster, name: str) -> dict[str, Any] | None:
    return next((claim for claim in cluster.claims() if claim["metadata"]["name"] == name), None)


def backstop(claim: dict[str, Any]) -> float:
    stamp = claim["spec"]["lifecycle"]["shutdownTime"]
    return float(calendar.timegm(time.strptime(stamp, "%Y-%m-%dT%H:%M:%SZ")))


async def test_backstop_never_falls_before_the_exact_expiry(
    provider: KubernetesProvider, fake_cluster: FakeCluster
) -> None:
    sandbox = await provider.create(lifetime=1.2)
    expires_at = sandbox.info.expires_at
    assert expires_at is not None
    claim = claim_of(fake_cluster, sandbox.id)
    assert claim is not None
    assert int(claim["metadata"]["labels"][EXPIRY_LABEL]) / 1000 == pytest.approx(expires_at, abs=0.001)
    assert backstop(claim) >= expires_at + BACKSTOP_MARGIN
    assert claim["spec"]["lifecycle"]["shutdownPolicy"] == "Delete"

    moved = time.time() + 30.25
    await sandbox.set_expiry(moved)
    assert sandbox.info.expires_at == moved
    claim = claim_of(fake_cluster, sandbox.id)
    assert claim is not None
    assert int(claim["metadata"]["labels"][EXPIRY_LABEL]) / 1000 == pytest.approx(moved, abs=0.001)
    assert moved + BACKSTOP_MARGIN <= backstop(claim) <= moved + BACKSTOP_MARGIN + 1
    again = await provider.get(sandbox.id)
    assert again.info.expires_at == pytest.approx(moved, abs=0.001)


async def test_a_claim_past_its_exact_expiry_is_terminated_when_met(
    provider: KubernetesProvider, fake_cluster: FakeCluster
) -> None:
    by_get = await provider.create(lifetime=0.5, labels={"case": "get"})
    by_list = await provider.create(lifetime=0.5, labels={"case": "list"})
    kept = await provider.create(lifetime=600, labels={"case": "list"})
    await asyncio.sleep(0.6)
    # The backstop is still ahead: only the provider knows these claims are over.
    assert claim_of(fake_cluster, by_get.id) is not None
    with pytest.raises(NotFoundError, match="expired"):
        await provider.get(by_get.id)
    assert claim_of(fake_cluster, by_get.id) is None
    assert [s.id for s in await provider.list({"case": "list"})] == [kept.id]
    assert claim_of(fake_cluster, by_list.id) is None
    assert claim_of(fake_cluster, kept.id) is not None
