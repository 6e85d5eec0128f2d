"""Jobs: commands that keep running after the call that started them returned, followed by id from any
server process (or after a restart) until they end.

One API whichever way the sandbox runs them: through its agent (`processes`), or as shell scripts and files
(`shell_jobs`) on runtimes that offer nothing but one-shot commands. Every command the tools run is a job: the
call waits up to a bound and returns the output so far with the job id; a command that finished within the bound
is just a result, with the paths of its whole output in the sandbox (the pointer for output beyond the cap).
"""

from __future__ import annotations

import contextlib
from collections.abc import Mapping

from .. import paths
from ..sandbox import Sandbox, check_command
from . import budget, processes, shell_jobs
from .channel import AgentRefused
from .results import JobResult

JOBS_DIR = shell_jobs.JOBS_DIR
job_dir = shell_jobs.job_dir
new_job_id = shell_jobs.new_job_id
parse_cursor = shell_jobs.parse_cursor


async def start(
    sandbox: Sandbox,
    command: str,
    *,
    timeout: float,
    wait: float,
    cwd: str = paths.WORKDIR,
    env: Mapping[str, str] | None = None,
    job_id: str | None = None,
    on_output: processes.OutputCallback | None = None,
) -> JobResult:
    """Run `command` as a job limited to `timeout` seconds; wait up to `wait` seconds for it to end."""
    check_command(command)
    if await sandbox.agent() is None:
        return await shell_jobs.start(sandbox, command, timeout=timeout, wait=wait, cwd=cwd, env=env, job_id=job_id)
    process = await processes.start(
        processes.agent_of(sandbox),
        command,
        timeout=timeout,
        cwd=paths.resolve(cwd),
        env=dict(env or {}),
        limit=sandbox.limits.output,
        process_id=job_id or new_job_id(),
    )
    return of_report(await process.follow(wait=wait, on_output=on_output))


async def status(sandbox: Sandbox, job_id: str, cursor: str | None = None) -> JobResult:
    """The job's state and its output written after `cursor` (from the start when omitted)."""
    return await wait(sandbox, job_id, 0, cursor)


async def wait(
    sandbox: Sandbox,
    job_id: str,
    timeout: float,
    cursor: str | None = None,
    on_output: processes.OutputCallback | None = None,
) -> JobResult:
    """Wait up to `timeout` seconds for the job to end (0: just look), then report as `status` does."""
    job_dir(job_id)  # an id no job can have is refused before anything is asked
    if await sandbox.agent() is None:
        if timeout <= 0:
            return await shell_jobs.status(sandbox, job_id, cursor)
        return await shell_jobs.wait(sandbox, job_id, timeout, cursor)
    report = await processes.follow(
        processes.agent_of(sandbox),
        job_id,
        wait=timeout,
        cursor=parse_cursor(cursor or "0:0"),
        limit=sandbox.limits.output,
        on_output=on_output,
    )
    return of_report(report)


async def cancel(sandbox: Sandbox, job_id: str) -> JobResult:
    """Signal the job's process group (TERM, then KILL after a grace period) and report how it ended."""
    job_dir(job_id)
    channel = await sandbox.agent()
    if channel is None:
        return await shell_jobs.cancel(sandbox, job_id)
    with contextlib.suppress(AgentRefused):  # it ended already: the report says how
        await channel.request({"op": "cancel", "p": job_id}, timeout=budget.AGENT_REQUEST)
    return await wait(sandbox, job_id, budget.END_OF_RUN)


def of_report(report: processes.Report) -> JobResult:
    directory = job_dir(report.process_id)
    return JobResult(
        job_id=report.process_id,
        state="running" if report.exit is None else report.exit.state,  # type: ignore[arg-type]
        result=report.result,
        cursor=f"{report.cursor[0]}:{report.cursor[1]}",
        stdout_path=f"{directory}/stdout",
        stderr_path=f"{directory}/stderr",
        limit=report.limit,
        started_at=report.started_at,
        python=report.kind == "cell",
        cell=report.exit.cell if report.exit is not None else None,
        images=report.figures,
    )
