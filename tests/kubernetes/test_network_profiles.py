"""Network on Kubernetes is a warm pool's: a session with network is claimed from the pool the operator named for
the `egress` profile, one without from the warm pool, and a profile no pool serves is refused with a message that
says so."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator

import pytest

from langchain_kubernetes_agent_sandbox import InvalidArgumentError
from langchain_kubernetes_agent_sandbox.network.settings import operator_policy
from langchain_kubernetes_agent_sandbox.providers.kubernetes import KubernetesConfig, KubernetesProvider
from langchain_kubernetes_agent_sandbox.testing import FakeCluster


@pytest.fixture(scope="module")
def two_pools() -> Iterator[FakeCluster]:
    with FakeCluster({"python-pool": 1, "egress-pool": 1}) as cluster:
        yield cluster


@pytest.fixture
async def provider(two_pools: FakeCluster) -> AsyncIterator[KubernetesProvider]:
    config = KubernetesConfig(
        warm_pool="python-pool",
        egress_pool="egress-pool",
        api_url=two_pools.router_url,
        kubeconfig=two_pools.kubeconfig,
    )
    made = KubernetesProvider(config)
    yield made
    for sandbox in await made.list():
        await sandbox.terminate()
    await made.aclose()


def pool_of_claim(cluster: FakeCluster, name: str) -> str:
    (claim,) = [claim for claim in cluster.claims() if claim["metadata"]["name"] == name]
    return str(claim["spec"]["warmPoolRef"]["name"])


async def test_sessions_with_and_without_network_come_from_their_pools(
    provider: KubernetesProvider, two_pools: FakeCluster
) -> None:
    offline = await provider.create()
    online = await provider.create(network=True)
    assert (pool_of_claim(two_pools, offline.id), pool_of_claim(two_pools, online.id)) == ("python-pool", "egress-pool")
    assert (offline.info.network, online.info.network) == (False, True)
    listed = {sandbox.id: sandbox.info.network for sandbox in await provider.list()}
    assert listed == {offline.id: False, online.id: True}
    assert (await provider.get(online.id)).info.network
    assert (await online.run("echo from the egress pool")).stdout == "from the egress pool\n"


async def test_a_profile_no_pool_serves_is_refused_saying_so(two_pools: FakeCluster) -> None:
    config = KubernetesConfig(warm_pool="python-pool", api_url=two_pools.router_url, kubeconfig=two_pools.kubeconfig)
    provider = KubernetesProvider(config)
    try:
        with pytest.raises(InvalidArgumentError, match="No warm pool serves the network profile 'egress'") as refused:
            await provider.create(network=True)
    finally:
        await provider.aclose()
    assert "--egress-pool" in str(refused.value)
    assert two_pools.claims() == []


async def test_a_session_cannot_narrow_a_pools_egress_with_rules_of_its_own(provider: KubernetesProvider) -> None:
    policy = operator_policy(["*.pkgs.test"])
    assert policy is not None
    with pytest.raises(InvalidArgumentError, match="cannot narrow egress"):
        await provider.create(network=policy.narrowed(["a.pkgs.test"]))


async def test_a_fork_is_claimed_from_its_sources_pool(provider: KubernetesProvider, two_pools: FakeCluster) -> None:
    online = await provider.create(network=True)
    await online.write_file("/app/notes.txt", b"online")
    fork = await provider.fork(online, max_bytes=1024 * 1024)
    assert (pool_of_claim(two_pools, fork.id), fork.info.network) == ("egress-pool", True)
    assert await fork.read_file("/app/notes.txt") == b"online"
