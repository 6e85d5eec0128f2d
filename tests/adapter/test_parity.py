"""One scripted deep-agent task, three ways: the library backend, the MCP-backed backend, and the server's own
tools loaded by langchain-mcp-adapters. The model must learn the same things, and the sandbox must end the same."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from deepagents import create_deep_agent
from deepagents.backends.protocol import SandboxBackendProtocol
from langchain_core.messages import BaseMessage, HumanMessage, ToolMessage
from langchain_mcp_adapters.client import MultiServerMCPClient

from langchain_kubernetes_agent_sandbox.adapter import McpSandboxBackend, SandboxBackend, mcp_connect
from tests.adapter.scripted_model import call, scripted, tool_results
from tests.adapter.server_process import serve_http

WORK = "/app/work"
PROGRAM = "import sys\nprint('hello', open('input.txt').read().strip())\nprint('careful', file=sys.stderr)\n"
INPUT = b"world\n"
FILES = ("input.txt", "hello.py", "out.txt")

LIBRARY_SCRIPT = [
    call("write_file", "write", file_path=f"{WORK}/hello.py", content=PROGRAM),
    call("execute", "run", command=f"cd {WORK} && python3 hello.py > out.txt"),
    call("read_file", "read", file_path=f"{WORK}/out.txt"),
    call("edit_file", "edit", file_path=f"{WORK}/hello.py", old_string="'hello'", new_string="'bye'"),
    call("grep", "grep", pattern="bye", path=WORK, output_mode="content"),
    call("execute", "fail", command="python3 -c 'print(\"partial\"); 1/0'"),
]
"""Upload and download are the application's part with a backend: before and after the run."""

SERVER_TOOLS_SCRIPT = [
    call("upload_file", "upload", path=f"{WORK}/input.txt", content=INPUT.decode()),
    call("upload_file", "write", path=f"{WORK}/hello.py", content=PROGRAM),
    call("execute", "run", command="python3 hello.py > out.txt", cwd=WORK),
    call("download_file", "read", path=f"{WORK}/out.txt"),
    call("execute", "edit", command="sed -i \"s/'hello'/'bye'/\" hello.py", cwd=WORK),
    call("execute", "grep", command=f"grep -rn bye {WORK}"),
    call("execute_python", "fail", code='print("partial"); 1/0'),
    call("download_file", "download", path=f"{WORK}/hello.py"),
]


def text(message: BaseMessage) -> str:
    content = message.content
    if isinstance(content, str):
        return content
    return "".join(block["text"] for block in content if isinstance(block, dict) and block.get("type") == "text")


def structured(message: ToolMessage) -> dict[str, Any]:
    artifact = message.artifact or {}
    return dict(artifact.get("structured_content") or {})


@pytest.fixture(scope="module")
def server_url() -> Iterator[str]:
    with serve_http() as url:
        yield url


async def _run_with_backend(backend: SandboxBackendProtocol) -> tuple[dict[str, ToolMessage], dict[str, bytes]]:
    [uploaded] = await backend.aupload_files([(f"{WORK}/input.txt", INPUT)])
    assert uploaded.error is None
    agent = create_deep_agent(model=scripted(LIBRARY_SCRIPT), backend=backend)
    result = await agent.ainvoke({"messages": [HumanMessage("go")]})
    downloads = await backend.adownload_files([f"{WORK}/{name}" for name in FILES])
    return tool_results(result["messages"]), {d.path.rsplit("/", 1)[1]: d.content or b"" for d in downloads}


async def test_library_and_mcp_backed_backends_give_the_model_identical_results(
    server_url: str, state_dir: str
) -> None:
    async with await SandboxBackend.alocal(state_dir) as library:
        library_results, library_files = await _run_with_backend(library)
    with McpSandboxBackend(mcp_connect.http(server_url)) as remote:
        remote_results, remote_files = await _run_with_backend(remote)

    assert {k: (text(m), m.status, m.artifact) for k, m in library_results.items()} == {
        k: (text(m), m.status, m.artifact) for k, m in remote_results.items()
    }
    assert library_files == remote_files
    assert library_files["out.txt"] == b"hello world\n"
    assert "careful" in text(library_results["run"])
    assert library_results["run"].artifact["exit_code"] == 0
    assert library_results["fail"].artifact["exit_code"] == 1
    assert "partial" in text(library_results["fail"])
    assert "ZeroDivisionError" in text(library_results["fail"])


async def test_server_tools_through_langchain_mcp_adapters_tell_the_model_the_same(
    server_url: str, state_dir: str
) -> None:
    async with await SandboxBackend.alocal(state_dir) as library:
        library_results, library_files = await _run_with_backend(library)

    client = MultiServerMCPClient({"sandbox": {"transport": "streamable_http", "url": server_url}})
    tools = await client.get_tools()
    agent = create_deep_agent(model=scripted(SERVER_TOOLS_SCRIPT), tools=tools)
    result = await agent.ainvoke({"messages": [HumanMessage("go")]})
    mcp_results = tool_results(result["messages"])
    run, read, grep, fail = (structured(mcp_results[k]) for k in ("run", "read", "grep", "fail"))

    # outputs, stderr and exit codes
    assert run["exit_code"] == library_results["run"].artifact["exit_code"] == 0
    assert run["stderr"] == "careful\n"
    assert "careful" in text(library_results["run"])
    assert read["content"] == library_files["out.txt"].decode()
    assert read["content"].strip() in text(library_results["read"])
    assert f"{WORK}/hello.py:2:print('bye'" in grep["stdout"]
    assert f"{WORK}/hello.py" in text(library_results["grep"])
    assert "print('bye'" in text(library_results["grep"])
    assert fail["exit_code"] == library_results["fail"].artifact["exit_code"] == 1
    assert fail["stdout"] == "partial\n"
    assert "ZeroDivisionError" in fail["stderr"]
    assert "ZeroDivisionError" in text(library_results["fail"])

    # the same files with the same contents at the end
    session = str(run["session_id"])
    with McpSandboxBackend(mcp_connect.http(server_url), session_id=session) as same_session:
        downloads = same_session.download_files([f"{WORK}/{name}" for name in FILES])
        listing = same_session.ls(WORK)
    assert {d.path.rsplit("/", 1)[1]: d.content for d in downloads} == library_files
    assert sorted(entry["path"] for entry in listing.entries or []) == sorted(f"{WORK}/{n}" for n in FILES)
    assert structured(mcp_results["download"])["content"] == library_files["hello.py"].decode()


async def test_error_causes_reach_the_model_the_same_way(server_url: str, state_dir: str) -> None:
    """A missing file: deepagents' `file_not_found` on both backends, the server's `not_found` through MCP."""
    script = [call("read_file", "missing", file_path=f"{WORK}/absent.txt")]
    seen = []
    async with await SandboxBackend.alocal(state_dir) as library:
        seen.append(await create_deep_agent(model=scripted(script), backend=library).ainvoke({"messages": []}))
    with McpSandboxBackend(mcp_connect.http(server_url)) as remote:
        seen.append(await create_deep_agent(model=scripted(script), backend=remote).ainvoke({"messages": []}))
    library_error, remote_error = (tool_results(r["messages"])["missing"] for r in seen)
    assert text(library_error) == text(remote_error)
    assert "file_not_found" in text(library_error)

    client = MultiServerMCPClient({"sandbox": {"transport": "streamable_http", "url": server_url}})
    tools = await client.get_tools()
    server_script = [call("download_file", "missing", path=f"{WORK}/absent.txt")]
    result = await create_deep_agent(model=scripted(server_script), tools=tools).ainvoke({"messages": []})
    server_error = tool_results(result["messages"])["missing"]
    assert server_error.status == "error"
    assert text(server_error).startswith("not_found:")
