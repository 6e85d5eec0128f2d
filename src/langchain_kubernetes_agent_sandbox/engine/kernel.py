"""A stateful Python kernel per sandbox, as in a notebook: variables, imports and open files persist between
cells. The sandbox's agent hosts it as a child process (so a crash is contained and reported, and a new one
starts on the next cell); on runtimes with nothing but one-shot commands it runs from shell commands and files
(`shell_kernel`). A cell is a job either way: job_status, job_wait and job_cancel work on it.
"""

from __future__ import annotations

from typing import Any

from ..sandbox import Sandbox
from . import budget, jobs, processes, shell_kernel
from .results import CellResult, Figure, JobResult

MAX_TEXT = 20_000
"""Characters of a value or error the server keeps from what a kernel says (the kernel bounds them to 10,000)."""
MAX_FIGURE_ENTRIES = 50


async def run_cell(
    sandbox: Sandbox,
    code: str,
    *,
    timeout: float,
    wait: float,
    reset: bool = False,
    keep: bool = True,
    env: dict[str, str] | None = None,
    figure_budget: int = 256 * 1024,
    on_output: processes.OutputCallback | None = None,
) -> CellResult:
    """Run `code` in the sandbox's kernel (with keep=False, in a fresh process), waiting up to `wait` seconds."""
    if not keep or await sandbox.agent() is None:
        environment = {**(env or {}), "KAS_FIGURE_BUDGET": str(figure_budget)}
        return await shell_kernel.run_cell(
            sandbox, code, timeout=timeout, wait=wait, reset=reset, keep=keep, env=environment
        )
    process = await processes.start_cell(
        processes.agent_of(sandbox),
        code,
        timeout=timeout,
        reset=reset,
        figure_budget=figure_budget,
        limit=sandbox.limits.output,
    )
    return await describe(sandbox, jobs.of_report(await process.follow(wait=wait, on_output=on_output)))


async def describe(sandbox: Sandbox, job: JobResult) -> CellResult:
    """What the kernel said about a cell's job (value, error, figures, whether the kernel is new)."""
    if job.cell is None and not (job.python and job.running and await sandbox.agent() is not None):
        return await shell_kernel.describe(sandbox, job)
    said: dict[str, Any] = job.cell or {}
    figures = [
        Figure(
            path=_text(entry.get("path")) or "",
            inline=_text(entry.get("inline")),
            width=_number(entry.get("width")),
            height=_number(entry.get("height")),
            error=_text(entry.get("error")),
        )
        for entry in _list(said.get("figures"))[:MAX_FIGURE_ENTRIES]
        if isinstance(entry, dict)
    ]
    survived = said.get("state_survived")
    return CellResult(
        job=job,
        kernel=_text(said.get("kernel")) or ("running" if job.running else "unknown"),
        kernel_note=_text(said.get("note")),
        value=_text(said.get("value")),
        error=_text(said.get("error")),
        figures=figures,
        figures_made=max(_number(said.get("figures_made")), len(figures)),
        state_survived=survived if isinstance(survived, bool) else None,
    )


async def running(sandbox: Sandbox) -> bool:
    """Whether the sandbox's kernel is alive now (its variables are there for the next cell)."""
    channel = await sandbox.agent()
    if channel is None:
        return await shell_kernel.running(sandbox)
    answer, _ = await channel.request({"op": "kernel"}, timeout=budget.AGENT_REQUEST)
    return answer.get("alive") is True


def _text(value: object) -> str | None:
    return value[:MAX_TEXT] if isinstance(value, str) else None


def _number(value: object) -> int:
    return value if isinstance(value, int) and not isinstance(value, bool) and value >= 0 else 0


def _list(value: object) -> list[Any]:
    return value if isinstance(value, list) else []
