"""A long-lived server's memory stays flat however many sessions come and go on the Kubernetes provider.

Each `k8s-agent-sandbox` handle owns an HTTP client with its own TLS context (most of a MiB, outside Python's
heap, so tracemalloc sees only its Python objects): a handle kept after its session ended is the leak these tests
look for, by counting the live HTTP clients and by tracemalloc's traced growth.
"""

from __future__ import annotations

import gc
import secrets
import time
import tracemalloc
from collections.abc import AsyncIterator

import httpx
import pytest

from langchain_kubernetes_agent_sandbox.providers.kubernetes import KubernetesConfig, KubernetesProvider
from langchain_kubernetes_agent_sandbox.sessions import SessionPolicy, SessionRegistry
from langchain_kubernetes_agent_sandbox.testing import FakeCluster

WARM_UP = 45
"""Sessions before measuring: aiohttp and yarl keep each claim's URLs in LRU caches of 128 entries, which a few
dozen sessions fill; after that they only churn."""
MEASURED = 30
GROWTH_PER_SESSION = 2048
"""Bytes of traced growth one ended session may leave on average. Once the caches are full it is about 0.2 KiB
(their churn); a kept handle alone leaves about 4.5 KiB of Python objects (and its TLS context beside them)."""


@pytest.fixture
async def provider(fake_cluster: FakeCluster) -> AsyncIterator[KubernetesProvider]:
    config = KubernetesConfig(
        warm_pool=fake_cluster.pool, api_url=fake_cluster.router_url, kubeconfig=fake_cluster.kubeconfig
    )
    made = KubernetesProvider(config)
    try:
        yield made
    finally:
        await made.aclose()


def http_clients() -> int:
    gc.collect()
    return sum(isinstance(thing, httpx.AsyncClient) for thing in gc.get_objects())


async def session_cycle(registry: SessionRegistry, principal: str) -> None:
    """What a client does: create a session, run a command in it, close it."""
    session = await registry.create(principal)
    assert (await session.sandbox.run("echo hi")).stdout == "hi\n"
    await registry.close(principal, session.id)


async def test_sessions_created_and_closed_leave_no_memory_behind(provider: KubernetesProvider) -> None:
    registry = SessionRegistry(provider)
    principal = f"memory-{secrets.token_hex(4)}"
    tracemalloc.start()  # before the warm-up, or entries evicted from the caches would go untraced
    try:
        for _ in range(WARM_UP):
            await session_cycle(registry, principal)
        clients = http_clients()
        before = tracemalloc.get_traced_memory()[0]
        for _ in range(MEASURED):
            await session_cycle(registry, principal)
        gc.collect()
        growth = tracemalloc.get_traced_memory()[0] - before
    finally:
        tracemalloc.stop()
    assert http_clients() <= clients
    assert growth / MEASURED < GROWTH_PER_SESSION, f"{growth / MEASURED:.0f} bytes kept per session"


async def test_expired_sessions_release_their_connections_when_reaped(provider: KubernetesProvider) -> None:
    skew = 0.0
    registry = SessionRegistry(provider, clock=lambda: time.time() + skew)
    principal = f"memory-{secrets.token_hex(4)}"
    clients = http_clients()
    for _ in range(2):
        await (await registry.create(principal)).sandbox.run("true")
    assert http_clients() == clients + 2
    skew = 2 * SessionPolicy().max_lifetime  # the next sweep finds both past their expiry
    assert await registry.reap() == 2
    assert http_clients() == clients
