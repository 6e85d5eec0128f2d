"""The engine's margins come on top of a run's own limit, never in its way: a run with the longest limit the
server allows still runs, on every path (agent, shell jobs, one process per cell)."""

from __future__ import annotations

import math
from pathlib import Path

import pytest

from langchain_kubernetes_agent_sandbox import ExecutionLimits, InvalidArgumentError
from langchain_kubernetes_agent_sandbox.engine import budget, jobs, kernel
from langchain_kubernetes_agent_sandbox.providers.local import LocalProvider

LONGEST = 3600.0


@pytest.mark.parametrize("keep_background", [True, False], ids=["agent", "one-shot"])
async def test_the_longest_allowed_limit_runs_on_every_path(local_state_dir: Path, keep_background: bool) -> None:
    provider = LocalProvider(
        local_state_dir, limits=ExecutionLimits(max_timeout=LONGEST), keep_background=keep_background
    )
    sandbox = await provider.create()
    try:
        for limit in (LONGEST - 10, LONGEST):  # 3590 once asked the sandbox for 3611 s and was refused
            job = await jobs.start(sandbox, "echo ok", timeout=limit, wait=math.inf if not keep_background else 30)
            assert (job.state, job.result.stdout, job.limit) == ("exited", "ok\n", limit)
            cell = await kernel.run_cell(sandbox, "1 + 1", timeout=limit, wait=30, keep=keep_background)
            assert cell.value == "2"
        with pytest.raises(InvalidArgumentError, match="exceeds the maximum"):
            await sandbox.run("true", timeout=LONGEST + 1)
    finally:
        await sandbox.terminate()
        await provider.aclose()


def test_a_shell_jobs_longest_limit_leaves_room_for_its_margins() -> None:
    longest_run = 180.0
    limit = budget.longest_job_limit(longest_run)
    assert limit + budget.KILL_GRACE + 1 + budget.SCRIPT == longest_run
