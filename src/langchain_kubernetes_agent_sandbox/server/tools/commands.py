"""execute and execute_python: run code in the session's sandbox and report what it printed."""

from __future__ import annotations

import base64
import math
from typing import TYPE_CHECKING, Annotated, Any, NamedTuple

from mcp.server.fastmcp import Context
from mcp.types import CallToolResult, ImageContent, ToolAnnotations
from pydantic import Field

from ...engine import budget, jobs, kernel
from ...engine.background import keeps_background
from ...engine.results import CellResult
from ...errors import InvalidArgumentError, NotFoundError, SandboxError, TooLargeError
from ...output import OutputLimit
from ...paths import WORKDIR
from ...sandbox import Sandbox
from ..context import context
from ..models import CommandOutput, PythonOutput
from ..output_caps import call_limit
from ..principal import current_principal
from . import Live, ToolSpec, reply
from .progress import streamed

if TYPE_CHECKING:
    from ...sessions import Session
    from ..tool_limits import ToolLimits

MAX_CODE_BYTES = 64 * 1024
"""Larger programs belong in a file (upload_file), not in one tool argument."""
MIN_OUTPUT_BYTES = 64
"""The smallest output cap (`OutputLimit`'s own floor)."""

SessionId = Annotated[
    str | None,
    Field(
        default=None,
        max_length=64,
        description="A session from create_session; omit it to use your default session.",
    ),
]


def timeout_type(limits: ToolLimits) -> Any:
    """The `timeout` argument of the tools that run code, bounded by the server's longest."""
    return Annotated[
        float | None,
        Field(
            default=None,
            gt=0,
            le=limits.max_timeout,
            description=f"Seconds before the run is killed; its output so far is kept. Omit for "
            f"{limits.wording['default_timeout']}.",
        ),
    ]


def background_type(limits: ToolLimits) -> Any:
    return Annotated[
        bool,
        Field(
            description="Start it as a job and return at once with its job id; follow it with job_status, "
            f"job_wait, job_cancel. Without it the call waits up to {limits.wording['detach_after']} and a "
            "command still running then becomes a job the same way."
        ),
    ]


FIGURE_BUDGET = 256 * 1024
"""Bytes of PNG per figure sent inline; larger figures are re-rendered at a lower resolution until they fit."""
MAX_INLINE_FIGURES = 8
"""Figures sent as images per call; the rest are listed by path (read them with download_file)."""

RUNS = ToolAnnotations(readOnlyHint=False, destructiveHint=True, idempotentHint=False, openWorldHint=False)


async def figure_images(sandbox: Sandbox, cell: CellResult) -> list[ImageContent]:
    """The cell's figures as MCP images, each already within the byte budget, at most `MAX_INLINE_FIGURES`.

    A sandbox's agent sends them as bytes; on the shell fallback they are read from the sandbox's own files."""
    pictures = list(cell.job.images)
    if not pictures:
        for figure in cell.figures:
            if figure.inline is None or len(pictures) >= MAX_INLINE_FIGURES:
                continue
            try:
                pictures.append(await sandbox.read_file(figure.inline))
            except SandboxError:
                continue
    return [
        ImageContent(type="image", data=base64.b64encode(data).decode("ascii"), mimeType="image/png")
        for data in pictures[:MAX_INLINE_FIGURES]
        if len(data) <= FIGURE_BUDGET and data.startswith(b"\x89PNG\r\n\x1a\n")
    ]


async def cell_reply(session: Session, cell: CellResult, timeout: float, limit: OutputLimit) -> CallToolResult:
    """A cell's result with its figures as images, whether the cell ended within its call or a later job_status or
    job_wait found it ended (a detached cell's figures come back then). Call it while the session is in use."""
    images = await figure_images(session.sandbox, cell)
    return reply(PythonOutput.of_cell(session, cell, timeout, inline=len(images), limit=limit), *images)


def output_bytes_type(limits: ToolLimits) -> Any:
    """The `max_output_bytes` argument of the tools that return a command's output, bounded by the server."""
    return Annotated[
        int | None,
        Field(
            default=None,
            ge=MIN_OUTPUT_BYTES,
            le=limits.max_call_output_bytes,
            description=f"Bytes of stdout and of stderr to keep (the first and last half of each); omit for "
            f"{limits.output_bytes}. Ask for more only when you need the whole output inline: every byte fills "
            "your context.",
        ),
    ]


def output_limit(session: Session, requested: int | None) -> OutputLimit:
    """The output cap of one call in `session`."""
    return call_limit(session.sandbox.limits.output, requested or context().limits.output_bytes)


RUN_ARGUMENTS: Live = {
    "timeout": timeout_type,
    "background": background_type,
    "max_output_bytes": output_bytes_type,
}
"""The arguments of the tools that run code whose bounds and defaults come from the settings."""


class _Plan(NamedTuple):
    limit: float
    """The run's time limit."""
    wait: float
    """How long the call waits for the run before leaving it running as a job."""
    kept: bool
    """Whether the sandbox keeps what a call leaves running (a job, the Python kernel)."""


async def _plan(sandbox: Sandbox, timeout: float | None, background: bool) -> _Plan:
    """How a run goes in `sandbox`.

    A sandbox that ends whatever a call leaves running cannot keep a job, so there the call waits for the whole
    run, whose limit must then fit in one request (a default limit is shortened to fit; one asked for is not).
    """
    limit = sandbox.limits.timeout_for(timeout)
    if await keeps_background(sandbox):
        return _Plan(limit, 0.0 if background else context().limits.detach_after, kept=True)
    if background:
        raise InvalidArgumentError(
            "This session's sandbox ends every process a call leaves running (its runtime allows no background "
            "processes), so background=true cannot work here: call again without it; the call then waits up to "
            "its timeout."
        )
    if sandbox.longest_run is not None:
        longest = budget.longest_job_limit(sandbox.longest_run) - budget.ONCE_GRACE
        if timeout is not None and timeout > longest:
            raise InvalidArgumentError(
                f"timeout {timeout:g} s is too long for this session: its sandbox keeps no background processes, so "
                f"a run must end within one request, at most {longest:g} s. Ask for less, or split the work."
            )
        limit = min(limit, longest)
    return _Plan(limit, math.inf, kept=False)


async def execute_python(
    ctx: Context,  # type: ignore[type-arg]
    code: Annotated[str, Field(min_length=1, max_length=MAX_CODE_BYTES, description="Python 3 source.")],
    session_id: SessionId = None,
    timeout: float | None = None,
    background: bool = False,
    reset: Annotated[
        bool, Field(description="Start a fresh Python process for this session, discarding all variables.")
    ] = False,
    max_output_bytes: int | None = None,
) -> Annotated[CallToolResult, PythonOutput]:
    """Run Python 3 source in the session's Python kernel, in the working directory /app, like a notebook cell.

    Variables, imports and open files persist between calls (reset=true starts afresh). Returns stdout and
    stderr separately, the repr of a trailing expression as `value`, and on error a traceback whose line
    numbers are those of your code (exit code 1). Matplotlib figures left open are saved as PNG files in the
    sandbox and come back as images (downscaled to fit), every one of them. A timeout interrupts the cell
    (KeyboardInterrupt) and says whether the variables survived; a crashed kernel is reported and a new one
    starts on the next call. A cell still running after {detach_after} becomes a job: follow it with
    job_status, job_wait, job_cancel. stdin is empty. No network unless the
    session was created with network=true. At most 64 KiB of code; for larger programs upload a file.
    """
    size = len(code.encode("utf-8"))
    if size > MAX_CODE_BYTES:
        raise TooLargeError(
            f"The code is {size} bytes, over the {MAX_CODE_BYTES}-byte limit: upload it with upload_file "
            "and run it with execute('python3 <file>')."
        )
    async with context().registry.use(current_principal.get(), session_id) as session:
        plan = await _plan(session.sandbox, timeout, background)
        async with streamed(ctx) as progress:
            cell = await kernel.run_cell(
                session.sandbox,
                code,
                timeout=plan.limit,
                wait=plan.wait,
                reset=reset,
                keep=plan.kept,
                env={"PYTHONDONTWRITEBYTECODE": "1"},
                figure_budget=FIGURE_BUDGET,
                on_output=progress.feed if progress else None,
            )
        return await cell_reply(session, cell, plan.limit, output_limit(session, max_output_bytes))


async def execute(
    ctx: Context,  # type: ignore[type-arg]
    command: Annotated[
        str, Field(min_length=1, max_length=MAX_CODE_BYTES, description="A shell command for /bin/sh -c.")
    ],
    session_id: SessionId = None,
    timeout: float | None = None,
    cwd: Annotated[
        str, Field(max_length=4096, description="Directory to run in; relative paths resolve against /app.")
    ] = WORKDIR,
    background: bool = False,
    max_output_bytes: int | None = None,
) -> Annotated[CallToolResult, CommandOutput]:
    """Run a shell command (`/bin/sh -c`) in the sandbox, by default in the working directory /app.

    Returns stdout and stderr separately with the exit code; a command that runs past its timeout is
    killed and reported with exit code 124 and the output it had written. Files persist within the
    session, so later calls (and download_file) see what this one wrote. Each call starts a new shell:
    `cd` and exported variables do not carry over. Output beyond {output_bytes} per stream (or the
    max_output_bytes asked for) keeps its beginning and end, and the whole output stays in files whose
    paths the result gives. No network unless the session was created with network=true. A command still
    running after {detach_after} becomes a job: the result gives its id and the output so far; follow it
    with job_status, job_wait and job_cancel. Start servers and other long commands with background=true.
    """
    async with context().registry.use(current_principal.get(), session_id) as session:
        plan = await _plan(session.sandbox, timeout, background)
        if cwd != WORKDIR and not await session.sandbox.exists(cwd):
            raise NotFoundError(f"The working directory {cwd} does not exist: create it first, or use /app.")
        async with streamed(ctx) as progress:
            job = await jobs.start(
                session.sandbox,
                command,
                timeout=plan.limit,
                wait=plan.wait,
                cwd=cwd,
                on_output=progress.feed if progress else None,
            )
    return reply(CommandOutput.of_job(session, job, plan.limit, output_limit(session, max_output_bytes)))


TOOLS = (
    ToolSpec(execute_python, RUNS, RUN_ARGUMENTS),
    ToolSpec(execute, RUNS, RUN_ARGUMENTS),
)
