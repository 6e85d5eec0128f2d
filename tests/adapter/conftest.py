"""Fixtures shared by the adapter tests: sandboxes need a state folder the sandbox user can traverse."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from langchain_kubernetes_agent_sandbox.providers.local.state import temporary_state


@pytest.fixture(scope="session")
def state_dir() -> Iterator[str]:
    """Under /tmp, not pytest's tmp_path: as root the sandbox user (65534) must traverse its parents."""
    with temporary_state("kas-adapter-") as path:
        yield str(path)
