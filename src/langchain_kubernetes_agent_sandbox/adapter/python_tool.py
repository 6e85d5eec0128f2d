"""The per-run `execute_python` tool: the agent keeps its in-memory files, and code runs in a sandbox that
exists only for the length of one agent run.

    tool = execute_python_tool(LocalProvider())
    agent = create_deep_agent(model=model, tools=[tool])
    async with sandbox_per_run():
        await agent.ainvoke({"messages": [...]})

The run's sandbox is made on the tool's first call, seeded with the agent's files under /app/, and
terminated when the `sandbox_per_run` block ends. The scope lives in a context variable, so concurrent runs
(tasks or threads) each get their own sandbox; LangGraph copies the context into the tasks that run tools.
"""

from __future__ import annotations

import base64
import contextlib
import contextvars
import hashlib
import secrets
from collections.abc import AsyncIterator, Iterator, Mapping
from typing import Any

from langchain.tools import ToolRuntime
from langchain_core.tools import BaseTool, StructuredTool

from ..errors import SandboxError
from ..paths import WORKDIR
from ..sandbox import Sandbox, SandboxProvider
from .loop import LoopThread
from .translate import execute_response

DESCRIPTION = """Run Python 3 code in an isolated sandbox and return what it printed (stdout, then stderr) with
the exit code. Your files are copied into the sandbox under /app/ (a file /notes.txt is /app/notes.txt), and
the code runs in /app. Files the code writes persist until this run ends; variables do not survive between
calls, so print what you need or save it to a file."""


class _RunScope:
    """The sandboxes of one agent run, one per provider, and what was already copied into each."""

    def __init__(self) -> None:
        self.sandboxes: dict[int, Sandbox] = {}
        self.seeded: dict[int, dict[str, str]] = {}

    async def release(self) -> None:
        for sandbox in self.sandboxes.values():
            with contextlib.suppress(SandboxError):
                await sandbox.terminate()
        self.sandboxes.clear()


_current_run: contextvars.ContextVar[_RunScope | None] = contextvars.ContextVar("kas_current_run", default=None)
_sync_loop = LoopThread("kas-run-release")


@contextlib.asynccontextmanager
async def sandbox_per_run() -> AsyncIterator[None]:
    """One agent run: `execute_python` calls inside share a sandbox, terminated when the block ends."""
    scope = _RunScope()
    token = _current_run.set(scope)
    try:
        yield
    finally:
        _current_run.reset(token)
        await scope.release()


@contextlib.contextmanager
def sandbox_per_run_sync() -> Iterator[None]:
    """`sandbox_per_run` for `agent.invoke`."""
    scope = _RunScope()
    token = _current_run.set(scope)
    try:
        yield
    finally:
        _current_run.reset(token)
        _sync_loop.run(scope.release())


def _agent_files(state: Mapping[str, Any] | None) -> dict[str, bytes]:
    """The agent's in-memory files (deepagents' `files` state) as sandbox paths and bytes."""
    files: dict[str, bytes] = {}
    for path, data in ((state or {}).get("files") or {}).items():
        content = data.get("content", "")
        if isinstance(content, list):  # the pre-0.7 form: a list of lines
            content = "\n".join(content)
        raw = base64.b64decode(content) if data.get("encoding") == "base64" else str(content).encode("utf-8")
        target = path if path == WORKDIR or path.startswith(WORKDIR + "/") else f"{WORKDIR}/{path.lstrip('/')}"
        files[target] = raw
    return files


async def _seed(sandbox: Sandbox, files: dict[str, bytes], seeded: dict[str, str]) -> None:
    """Copy the files that are new or changed since the last call of this run."""
    for path, raw in files.items():
        digest = hashlib.sha256(raw).hexdigest()
        if seeded.get(path) != digest:
            await sandbox.write_file(path, raw)
            seeded[path] = digest


def execute_python_tool(
    provider: SandboxProvider, *, timeout: float | None = None, name: str = "execute_python"
) -> BaseTool:
    """A LangChain tool running Python in a per-run sandbox from `provider` (see `sandbox_per_run`).

    Outside a `sandbox_per_run` block each call gets a fresh sandbox, terminated right after it.
    """
    key = id(provider)

    async def run_in(sandbox: Sandbox, code: str, files: dict[str, bytes], seeded: dict[str, str]) -> str:
        await _seed(sandbox, files, seeded)
        script = f"/tmp/.kas-python-{secrets.token_hex(4)}.py"
        await sandbox.write_file(script, code.encode("utf-8"))
        result = await sandbox.run(f"python3 {script}; status=$?; rm -f {script}; exit $status", timeout=timeout)
        response = execute_response(result)
        verdict = "succeeded" if response.exit_code == 0 else "failed"
        return f"{response.output}\n[Python {verdict} with exit code {response.exit_code}]"

    async def execute_python(code: str, runtime: ToolRuntime) -> str:
        files = _agent_files(runtime.state if isinstance(runtime.state, Mapping) else None)
        scope = _current_run.get()
        try:
            if scope is None:
                sandbox = await provider.create()
                try:
                    return await run_in(sandbox, code, files, {})
                finally:
                    await sandbox.terminate()
            if key not in scope.sandboxes:
                scope.sandboxes[key] = await provider.create()
                scope.seeded[key] = {}
            return await run_in(scope.sandboxes[key], code, files, scope.seeded[key])
        except SandboxError as error:
            return f"Error: the code could not run ({error.code}): {error}"

    def execute_python_sync(code: str, runtime: ToolRuntime) -> str:
        return _sync_loop.run(execute_python(code, runtime))

    return StructuredTool.from_function(
        func=execute_python_sync, coroutine=execute_python, name=name, description=DESCRIPTION
    )
