"""The per-run execute_python tool: the agent's files go in under /app, one sandbox per run, gone after it."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest
from deepagents import create_deep_agent
from langchain_core.messages import HumanMessage

from langchain_kubernetes_agent_sandbox.adapter import execute_python_tool, sandbox_per_run, sandbox_per_run_sync
from langchain_kubernetes_agent_sandbox.providers.local import LocalProvider
from tests.adapter.scripted_model import call, scripted, tool_results


@pytest.fixture
async def provider(state_dir: str) -> AsyncIterator[LocalProvider]:
    provider = LocalProvider(state_dir)
    yield provider
    for sandbox in await provider.list():
        await sandbox.terminate()


def _agent(provider: LocalProvider, *turns: object) -> object:
    return create_deep_agent(model=scripted(turns), tools=[execute_python_tool(provider)])  # type: ignore[arg-type]


async def test_agent_files_are_seeded_under_app_and_calls_share_the_run_sandbox(provider: LocalProvider) -> None:
    agent = _agent(
        provider,
        call("write_file", "w", file_path="/data.txt", content="3\n4\n"),
        call("execute_python", "sum", code="print(sum(int(x) for x in open('/app/data.txt')))\nopen('out','w')"),
        call("execute_python", "see", code="import os; print(sorted(os.listdir('.')))"),
    )
    async with sandbox_per_run():
        result = await agent.ainvoke({"messages": [HumanMessage("go")]})  # type: ignore[attr-defined]
    messages = tool_results(result["messages"])
    assert messages["sum"].content.startswith("7\n")
    assert "['data.txt', 'out']" in messages["see"].content


async def test_the_run_sandbox_is_terminated_when_the_run_ends(provider: LocalProvider) -> None:
    agent = _agent(provider, call("execute_python", "c", code="print('hi')"))
    async with sandbox_per_run():
        await agent.ainvoke({"messages": [HumanMessage("go")]})  # type: ignore[attr-defined]
        assert len(await provider.list()) == 1
    assert await provider.list() == []


async def test_a_traceback_reaches_the_model_with_the_exit_code(provider: LocalProvider) -> None:
    agent = _agent(provider, call("execute_python", "c", code="print('before')\n1/0"))
    async with sandbox_per_run():
        result = await agent.ainvoke({"messages": [HumanMessage("go")]})  # type: ignore[attr-defined]
    content = tool_results(result["messages"])["c"].content
    assert content.startswith("before\n")
    assert "ZeroDivisionError" in content
    assert content.endswith("[Python failed with exit code 1]")


async def test_concurrent_runs_get_separate_sandboxes(provider: LocalProvider) -> None:
    async def run(marker: str) -> str:
        agent = _agent(
            provider,
            call("execute_python", "w", code=f"open('/app/mark','w').write('{marker}')"),
            call("execute_python", "r", code="import os; print(open('/app/mark').read(), len(os.listdir('/app')))"),
        )
        async with sandbox_per_run():
            result = await agent.ainvoke({"messages": [HumanMessage("go")]})  # type: ignore[attr-defined]
        return str(tool_results(result["messages"])["r"].content)

    first, second = await asyncio.gather(run("one"), run("two"))
    assert first.startswith("one 1\n")
    assert second.startswith("two 1\n")
    assert await provider.list() == []


def test_sync_invoke_works_and_releases_the_sandbox(provider: LocalProvider) -> None:
    agent = _agent(provider, call("execute_python", "c", code="print(6 * 7)"))
    with sandbox_per_run_sync():
        result = agent.invoke({"messages": [HumanMessage("go")]})  # type: ignore[attr-defined]
    assert tool_results(result["messages"])["c"].content.startswith("42\n")
    assert asyncio.run(provider.list()) == []


async def test_without_a_run_scope_each_call_gets_a_fresh_sandbox(provider: LocalProvider) -> None:
    agent = _agent(
        provider,
        call("execute_python", "w", code="open('/app/left','w').write('x')"),
        call("execute_python", "r", code="import os; print(os.path.exists('/app/left'))"),
    )
    result = await agent.ainvoke({"messages": [HumanMessage("go")]})  # type: ignore[attr-defined]
    assert tool_results(result["messages"])["r"].content.startswith("False\n")
    assert await provider.list() == []
