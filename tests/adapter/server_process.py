"""The server the adapter tests talk to: `serve` over HTTP with its default limits."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

from langchain_kubernetes_agent_sandbox.testing.server_process import serve_http as serve

ADAPTER_SETTINGS = ("--allow-unauthenticated", "--principal=adapter-tests", "--log-level=WARNING")
"""Only what a test server needs; every limit is the default, which deep agents work with."""


@contextlib.contextmanager
def serve_http(state_dir: str | None = None) -> Iterator[str]:
    """Yields the MCP endpoint URL of a server on the local provider."""
    with serve(*ADAPTER_SETTINGS, state_dir=state_dir) as served:
        yield served.mcp_url
