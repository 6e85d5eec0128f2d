"""The deepagents backends suspend a session and resume it: processes end, files stay (issue 16)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from langchain_kubernetes_agent_sandbox.adapter import McpSandboxBackend, SandboxBackend, mcp_connect
from langchain_kubernetes_agent_sandbox.providers.local import LocalProvider
from tests.adapter.server_process import serve_http

GONE = "pgrep -f '^sleep 30[23]$' || echo gone"


@pytest.fixture(scope="module")
def server_url() -> Iterator[str]:
    with serve_http() as url:
        yield url


async def test_a_backend_opened_on_a_suspended_sandbox_resumes_it_with_its_files(state_dir: str) -> None:
    provider = LocalProvider(state_dir)
    async with await SandboxBackend.aopen(provider) as first:
        await first.aupload_files([("/app/kept.txt", b"kept")])
        await first.aexecute("sleep 302 &")
        await first.asuspend()
        assert first.core.info.suspended
        async with await SandboxBackend.aopen(provider, sandbox_id=first.id) as again:
            assert not again.core.info.suspended
            assert (await again.aexecute(f"cat /app/kept.txt; echo; {GONE}")).output == "kept\ngone\n"


async def test_the_mcp_backend_suspends_its_session_and_the_next_call_resumes_it(server_url: str) -> None:
    with McpSandboxBackend(mcp_connect.http(server_url)) as backend:
        backend.upload_files([("/app/kept.txt", b"kept")])
        backend.execute("sleep 303 &")
        backend.suspend()
        assert backend.execute(f"cat /app/kept.txt; echo; {GONE}").output == "kept\ngone\n"
