"""Fixtures for reliability tests: the real `serve` process over HTTP, on the local provider or on the
imitation cluster, with one token per load worker."""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from langchain_kubernetes_agent_sandbox.providers.local.state import temporary_state
from langchain_kubernetes_agent_sandbox.testing import FakeCluster
from langchain_kubernetes_agent_sandbox.testing.server_process import ServedServer, serve_http
from tests.control_plane import RealPool
from tests.server.providers import CLUSTER_FIXTURES, Cluster

Serve = Callable[..., contextlib.AbstractContextManager[ServedServer]]
"""serve(token_file, *flags) runs one `serve --transport http` on the test's backend until the block ends."""


def cluster_flags(cluster: Cluster) -> tuple[str, ...]:
    common = ("--provider=kubernetes", f"--warm-pool={cluster.pool}", f"--kubeconfig={cluster.kubeconfig}")
    if getattr(cluster, "runtime", "reference") == "sandboxd":
        return (*common, "--runtime=sandboxd", "--connection=in-cluster")
    return (*common, f"--api-url={cluster.router_url}", "--connection=direct")


@pytest.fixture
def state_dir() -> Iterator[Path]:
    with temporary_state("kas-reliability-") as folder:
        yield folder


@pytest.fixture(params=["local", "kubernetes"])
def backend(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def serve(backend: str, state_dir: Path, tmp_path: Path, request: pytest.FixtureRequest) -> Serve:
    """Servers on the test's backend; every one of them shares the same state (folder or cluster)."""
    flags = cluster_flags(request.getfixturevalue(CLUSTER_FIXTURES[backend])) if backend in CLUSTER_FIXTURES else ()

    @contextlib.contextmanager
    def run(token_file: Path, *extra: str) -> Iterator[ServedServer]:
        log_path = tmp_path / f"server-{len(list(tmp_path.glob('server-*.log')))}.log"
        with (
            log_path.open("wb") as log,
            serve_http(f"--token-file={token_file}", *flags, *extra, state_dir=str(state_dir), log=log) as served,
        ):
            yield served

    return run


Alive = Callable[[], set[str]]
"""The sandboxes alive on the test's backend right now: local sandbox ids, or SandboxClaim names."""


@pytest.fixture
def alive(backend: str, state_dir: Path, request: pytest.FixtureRequest) -> Alive:
    if backend == "kubernetes":
        cluster: FakeCluster = request.getfixturevalue("fake_cluster")
        return lambda: {claim["metadata"]["name"] for claim in cluster.claims()}
    if backend in ("kubernetes-real", "kubernetes-sandboxd"):
        real: RealPool = request.getfixturevalue(CLUSTER_FIXTURES[backend])
        return lambda: {claim["metadata"]["name"] for claim in real.claims()}

    def local_sandboxes() -> set[str]:
        folder = state_dir / "sandboxes"
        return {entry.name for entry in folder.iterdir()} if folder.exists() else set()

    return local_sandboxes
