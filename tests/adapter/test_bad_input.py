"""Bad input on every backend: deepagents' error literals for every cause, partial batches in order, and a
sandbox that disappears mid-run reported to the agent instead of raised."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator

import pytest
from deepagents import create_deep_agent
from langchain_core.messages import HumanMessage

from langchain_kubernetes_agent_sandbox.adapter import McpSandboxBackend, SandboxBackend, mcp_connect
from langchain_kubernetes_agent_sandbox.adapter.base import AsyncFirstSandbox
from tests.adapter.scripted_model import call, scripted, tool_results
from tests.adapter.server_process import serve_http

LOCKED = "/tmp/bad/locked.txt"


@pytest.fixture(scope="module")
def server_url() -> Iterator[str]:
    with serve_http() as url:
        yield url


@pytest.fixture(params=["local", "mcp"])
async def backend(request: pytest.FixtureRequest, state_dir: str) -> AsyncIterator[AsyncFirstSandbox]:
    if request.param == "local":
        async with await SandboxBackend.alocal(state_dir) as local:
            yield local
        return
    remote = McpSandboxBackend(mcp_connect.http(request.getfixturevalue("server_url")))
    yield remote
    await remote.aclose()


async def _prepare(backend: AsyncFirstSandbox) -> None:
    setup = await backend.aexecute(f"mkdir -p /tmp/bad/dir && echo secret > {LOCKED} && chmod 000 {LOCKED}")
    assert setup.exit_code == 0, setup.output


@pytest.mark.parametrize(
    ("path", "literal"),
    [
        ("relative/file.txt", "invalid_path"),
        ("/tmp/bad/missing.txt", "file_not_found"),
        ("/tmp/bad/dir", "is_directory"),
        (LOCKED, "permission_denied"),
        (f"{LOCKED}/below", "invalid_path"),
    ],
)
async def test_download_errors_use_deepagents_literals(backend: AsyncFirstSandbox, path: str, literal: str) -> None:
    await _prepare(backend)
    [response] = await backend.adownload_files([path])
    assert (response.path, response.content, response.error) == (path, None, literal)


@pytest.mark.parametrize(
    ("path", "literal"),
    [
        ("relative.txt", "invalid_path"),
        ("/tmp/bad/dir", "is_directory"),
        (LOCKED, "permission_denied"),
        ("/usr/bin/not-yours", "permission_denied"),
        (f"{LOCKED}/below", "invalid_path"),
    ],
)
async def test_upload_errors_use_deepagents_literals(backend: AsyncFirstSandbox, path: str, literal: str) -> None:
    await _prepare(backend)
    [response] = await backend.aupload_files([(path, b"data")])
    assert (response.path, response.error) == (path, literal)


async def test_batches_succeed_partially_in_input_order(backend: AsyncFirstSandbox) -> None:
    await _prepare(backend)
    uploads = await backend.aupload_files(
        [("/tmp/bad/a.txt", b"a"), ("nope.txt", b"x"), ("/tmp/bad/dir", b"x"), ("/app/b.txt", b"b")]
    )
    assert [(u.path, u.error) for u in uploads] == [
        ("/tmp/bad/a.txt", None),
        ("nope.txt", "invalid_path"),
        ("/tmp/bad/dir", "is_directory"),
        ("/app/b.txt", None),
    ]
    downloads = await backend.adownload_files(["/app/b.txt", "/tmp/bad/missing", "/tmp/bad/a.txt"])
    assert [(d.path, d.content, d.error) for d in downloads] == [
        ("/app/b.txt", b"b", None),
        ("/tmp/bad/missing", None, "file_not_found"),
        ("/tmp/bad/a.txt", b"a", None),
    ]


async def test_commands_run_in_a_shell_in_app_with_stderr_kept(backend: AsyncFirstSandbox) -> None:
    response = await backend.aexecute("pwd; echo out | tr a-z A-Z; echo err >&2; exit 3")
    assert response.output == "/app\nOUT\nerr\n"
    assert response.exit_code == 3


async def test_a_timeout_kills_the_command_and_keeps_partial_output(backend: AsyncFirstSandbox) -> None:
    response = await backend.aexecute("echo started; sleep 30; echo never", timeout=1)
    assert response.exit_code == 124
    assert response.output.startswith("started\n")
    assert "never" not in response.output
    assert "Error: Command timed out after" in response.output


async def test_a_negative_timeout_is_an_invalid_parameter(backend: AsyncFirstSandbox) -> None:
    with pytest.raises(ValueError, match="timeout"):
        await backend.aexecute("true", timeout=-1)


async def test_a_sandbox_gone_mid_run_is_an_error_the_agent_reads(state_dir: str) -> None:
    backend = await SandboxBackend.alocal(state_dir)
    agent = create_deep_agent(
        model=scripted(
            [
                call("execute", "gone", command="echo hi"),
                call("read_file", "read", file_path="/app/x.txt"),
                call("write_file", "write", file_path="/app/x.txt", content="x"),
            ]
        ),
        backend=backend,
    )
    await backend.core.terminate()
    result = await agent.ainvoke({"messages": [HumanMessage("go")]})
    results = tool_results(result["messages"])
    assert "sandbox_gone" in str(results["gone"].content)
    assert results["gone"].artifact["exit_code"] == 1
    assert "Error" in str(results["read"].content)
    assert "sandbox_gone" in str(results["write"].content)
    assert result["messages"][-1].content == "done"
    await backend.aclose()


async def test_an_mcp_session_closed_mid_run_is_an_error_the_agent_reads(server_url: str) -> None:
    backend = McpSandboxBackend(mcp_connect.http(server_url))
    agent = create_deep_agent(
        model=scripted([call("execute", "gone", command="echo hi"), call("ls", "ls", path="/app")]), backend=backend
    )
    async with mcp_connect.http(server_url)() as client:
        await client.call_tool("close_session", {"session_id": backend.id})
    result = await agent.ainvoke({"messages": [HumanMessage("go")]})
    results = tool_results(result["messages"])
    assert "not_found" in str(results["gone"].content)
    assert results["gone"].artifact["exit_code"] == 1
    assert result["messages"][-1].content == "done"
    [download] = await backend.adownload_files(["/app/x.txt"])
    assert download.error == "file_not_found"
    await backend.aclose()
