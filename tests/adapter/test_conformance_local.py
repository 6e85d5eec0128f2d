"""The standard deepagents sandbox suite on the local embedded sandbox."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from langchain_kubernetes_agent_sandbox.adapter import SandboxBackend
from tests.adapter.sandbox_suite import StandardSandboxSuite


class TestLocalBackendConformance(StandardSandboxSuite):
    @pytest.fixture(scope="class")
    def sandbox(self, state_dir: str) -> Iterator[SandboxBackend]:
        with SandboxBackend.local(state_dir) as backend:
            yield backend
