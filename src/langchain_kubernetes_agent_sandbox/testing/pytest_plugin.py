"""Pytest fixtures for the imitation cluster: `pytest -p langchain_kubernetes_agent_sandbox.testing.pytest_plugin`,
or import `fake_cluster` into a conftest.

`fake_cluster` is session-scoped (starting pods takes a second or two); each test gets it with all fault
switches cleared, so a test that breaks the cluster cannot break the next one.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from .cluster import FakeCluster


@pytest.fixture(scope="session")
def fake_cluster_session() -> Iterator[FakeCluster]:
    with FakeCluster({"python-pool": 3}) as cluster:
        yield cluster


@pytest.fixture
def fake_cluster(fake_cluster_session: FakeCluster) -> Iterator[FakeCluster]:
    fake_cluster_session.clear_faults()
    yield fake_cluster_session
    fake_cluster_session.clear_faults()
