"""job_status, job_wait and job_cancel: follow commands that outlived the call that started them."""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated

from mcp.types import CallToolResult, ToolAnnotations
from pydantic import Field

from ...engine import jobs, kernel
from ...engine.results import JobResult
from ...output import OutputLimit
from ..context import context
from ..models import CommandOutput
from ..principal import current_principal
from . import Live, ToolSpec, reply
from .commands import RUNS, SessionId, cell_reply, output_bytes_type, output_limit

if TYPE_CHECKING:
    from ...sessions import Session

JobId = Annotated[str, Field(min_length=1, max_length=32, description="The job_id an execute result gave.")]
Cursor = Annotated[
    str | None,
    Field(
        default=None,
        max_length=64,
        description="The cursor from the previous result for this job: only output written since then comes back. "
        "Omit it to get the output from the start.",
    ),
]
OUTPUT_ARGUMENTS: Live = {"max_output_bytes": output_bytes_type}
READS = ToolAnnotations(readOnlyHint=True, destructiveHint=False, idempotentHint=True, openWorldHint=False)


async def _reply(session: Session, job: JobResult, output: OutputLimit) -> CallToolResult:
    """A Python cell's job reports like execute_python (value, figures as images, kernel), others like execute."""
    limit = session.sandbox.limits.default_timeout
    if job.python:
        return await cell_reply(session, await kernel.describe(session.sandbox, job), limit, output)
    return reply(CommandOutput.of_job(session, job, limit, output))


async def job_status(
    job_id: JobId, session_id: SessionId = None, cursor: Cursor = None, max_output_bytes: int | None = None
) -> Annotated[CallToolResult, CommandOutput]:
    """Say whether a job still runs (or how it ended: exit code, timed out, cancelled) and return its output
    since `cursor`. Jobs live in the session's sandbox; the whole output stays in the files the result names.
    """
    async with context().registry.use(current_principal.get(), session_id) as session:
        job = await jobs.status(session.sandbox, job_id, cursor)
        return await _reply(session, job, output_limit(session, max_output_bytes))


async def job_wait(
    job_id: JobId,
    timeout: Annotated[
        float, Field(gt=0, le=170, description="Seconds to wait at most (keep it under your client's timeout).")
    ] = 30.0,
    session_id: SessionId = None,
    cursor: Cursor = None,
    max_output_bytes: int | None = None,
) -> Annotated[CallToolResult, CommandOutput]:
    """Wait up to `timeout` seconds for a job to end, then report as job_status does (running=true if it has not
    ended yet: call again)."""
    async with context().registry.use(current_principal.get(), session_id) as session:
        job = await jobs.wait(session.sandbox, job_id, timeout, cursor)
        return await _reply(session, job, output_limit(session, max_output_bytes))


async def job_cancel(
    job_id: JobId, session_id: SessionId = None, max_output_bytes: int | None = None
) -> Annotated[CallToolResult, CommandOutput]:
    """Stop a job: its process group gets SIGTERM, then SIGKILL a few seconds later if still alive. Returns
    its output and how it ended; cancelling a job that already ended changes nothing."""
    async with context().registry.use(current_principal.get(), session_id) as session:
        job = await jobs.cancel(session.sandbox, job_id)
        return await _reply(session, job, output_limit(session, max_output_bytes))


TOOLS = (
    ToolSpec(job_status, READS, OUTPUT_ARGUMENTS),
    ToolSpec(job_wait, READS, OUTPUT_ARGUMENTS),
    ToolSpec(job_cancel, RUNS, OUTPUT_ARGUMENTS),
)
