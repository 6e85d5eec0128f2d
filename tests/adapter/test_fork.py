"""The deepagents backends fork their sandbox: the fork's backend starts with the files, and from then on the two
are independent; each backend closes what it owns, in either order."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import kubernetes.config
import pytest
from k8s_agent_sandbox import SandboxClient
from k8s_agent_sandbox.models import SandboxDirectConnectionConfig

from langchain_kubernetes_agent_sandbox.adapter import (
    KubernetesAgentSandbox,
    McpSandboxBackend,
    SandboxBackend,
    mcp_connect,
)
from langchain_kubernetes_agent_sandbox.adapter.backend import ADAPTER_LIMITS
from langchain_kubernetes_agent_sandbox.providers.kubernetes import KubernetesConfig, KubernetesProvider
from langchain_kubernetes_agent_sandbox.testing import FakeCluster
from tests.adapter.server_process import serve_http

Backend = SandboxBackend | McpSandboxBackend


def check_fork(source: Backend, make_fork: Any) -> None:
    """Files written before the fork are in it; writes after it show only where they were made."""
    assert source.upload_files([("/app/data.txt", b"before")])[0].error is None
    fork = make_fork()
    try:
        assert fork.id != source.id
        assert fork.download_files(["/app/data.txt"])[0].content == b"before"
        assert fork.upload_files([("/app/data.txt", b"in the fork")])[0].error is None
        assert source.execute("echo source > /app/only-source").exit_code == 0
        assert source.download_files(["/app/data.txt"])[0].content == b"before"
        assert fork.execute("cat /app/data.txt; test -e /app/only-source").output == "in the fork"
    finally:
        fork.close()
    assert source.execute("cat /app/data.txt").output == "before", "closing the fork leaves the source working"


def test_a_local_backend_forks_and_each_closes_in_either_order(state_dir: str) -> None:
    with SandboxBackend.local(state_dir) as source:
        check_fork(source, source.fork)
        fork = source.fork()
    with fork:  # the source closed first: the fork keeps the shared loop and provider until it closes
        assert fork.download_files(["/app/data.txt"])[0].content == b"before"


async def test_afork_works_from_async_code(state_dir: str) -> None:
    async with await SandboxBackend.alocal(state_dir) as source:
        await source.aupload_files([("/app/a.txt", b"async")])
        async with await source.afork() as fork:
            assert (await fork.adownload_files(["/app/a.txt"]))[0].content == b"async"


def test_a_backend_on_the_cluster_forks_through_the_agents(fake_cluster_session: FakeCluster) -> None:
    config = KubernetesConfig(
        warm_pool=fake_cluster_session.pool,
        api_url=fake_cluster_session.router_url,
        kubeconfig=fake_cluster_session.kubeconfig,
    )
    with SandboxBackend.open(KubernetesProvider(config, limits=ADAPTER_LIMITS), close_provider=True) as source:
        check_fork(source, source.fork)


@pytest.fixture
def seed_client(fake_cluster_session: FakeCluster) -> Any:
    api = kubernetes.config.new_client_from_config(config_file=fake_cluster_session.kubeconfig)
    return SandboxClient(
        connection_config=SandboxDirectConnectionConfig(api_url=fake_cluster_session.router_url), api_client=api
    )


def test_the_seed_class_forks_into_a_handle_the_caller_claimed(
    seed_client: Any, fake_cluster_session: FakeCluster
) -> None:
    handles = [seed_client.create_sandbox(fake_cluster_session.pool) for _ in range(2)]
    try:
        with KubernetesAgentSandbox(sandbox=handles[0]) as source:
            with pytest.raises(ValueError, match="claim one for the fork"):
                source.fork()
            check_fork(source, lambda: source.fork(handles[1]))
    finally:
        for handle in handles:
            handle.terminate()


@pytest.fixture(scope="module")
def server_url() -> Iterator[str]:
    with serve_http() as url:
        yield url


def test_the_mcp_backend_forks_its_session_and_closes_the_fork(server_url: str) -> None:
    forks: list[str] = []

    def fork() -> McpSandboxBackend:
        forked = source.fork()
        forks.append(forked.id)
        return forked

    with McpSandboxBackend(mcp_connect.http(server_url)) as source:
        check_fork(source, fork)
    with McpSandboxBackend(mcp_connect.http(server_url), session_id=forks[0]) as closed:
        assert "No session" in closed.execute("true").output
