"""create_session, list_sessions, close_session, fork_session, suspend_session and session_info: sessions are
the caller's, by principal."""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated, Any

from mcp.types import CallToolResult, ToolAnnotations
from pydantic import Field

from ...engine import kernel
from ...engine.background import keeps_background
from ...paths import WORKDIR
from ...sessions import Session, suspension
from ..context import context
from ..models import ClosedSession, ForkedSession, SessionDescription, SessionList, SuspendedSession
from ..principal import current_principal
from . import ToolSpec, reply
from .commands import SessionId

if TYPE_CHECKING:
    from ..tool_limits import ToolLimits

READS = ToolAnnotations(readOnlyHint=True, openWorldHint=False)


def idle_type(limits: ToolLimits) -> Any:
    return Annotated[
        int | None,
        Field(
            default=None,
            ge=1,
            le=int(limits.max_idle_timeout),
            description="Idle timeout: this many seconds after its last use the session is suspended (files kept) "
            "where the server can keep its files, else it ends. Omit for "
            f"{limits.wording['idle_timeout']}.",
        ),
    ]


async def create_session(
    ttl_seconds: int | None = None,
    network: Annotated[
        bool | Annotated[list[Annotated[str, Field(min_length=1, max_length=260)]], Field(max_length=64)],
        Field(
            description="Egress: false for none; true for everything the server's allow-list permits; or a "
            "list of rules that narrow it (`pypi.example.test`, `*.example.test`, `host:port`). Connections go "
            "through the server's proxy (HTTP_PROXY and friends are set); session_info shows what is reachable.",
        ),
    ] = False,
    labels: Annotated[
        dict[str, str] | None,
        Field(default=None, description="Up to 16 key=value tags (letters, digits, '-', '_', '.') to find it by."),
    ] = None,
) -> Annotated[CallToolResult, SessionDescription]:
    """Create a new, empty sandbox session and return its session_id; pass that id to the other tools.

    Each session is a separate sandbox whose files persist between calls until close_session or the
    server's maximum lifetime. When it goes unused for its idle timeout (every call resets the clock) it is
    suspended where the server can keep its files (session_info says whether), else it ends; the next call on
    a suspended session resumes it. Calls without session_id use your default session instead, so create one
    only for a clean or separate workspace. Your number of open sessions is limited.
    """
    session = await context().registry.create(
        current_principal.get(), idle_timeout=ttl_seconds, network=network, labels=labels
    )
    return reply(SessionDescription.of(session, WORKDIR))


async def list_sessions() -> Annotated[CallToolResult, SessionList]:
    """List your open sessions (oldest first) with their ids, labels, state (running or suspended) and when
    each expires or is suspended."""
    sessions = await context().registry.list_for(current_principal.get())
    return reply(SessionList(sessions=[SessionDescription.of(session, WORKDIR) for session in sessions]))


async def close_session(
    session_id: Annotated[str, Field(min_length=1, max_length=64, description="The session to close.")],
) -> Annotated[CallToolResult, ClosedSession]:
    """Close a session: its sandbox and every file in it are destroyed, and its id stops working.
    Closing your default session is allowed; the next call without session_id starts a fresh one."""
    await context().registry.close(current_principal.get(), session_id)
    await context().previews.end_session(session_id)
    return reply(ClosedSession(session_id=session_id, closed=True))


async def suspend_session(session_id: SessionId = None) -> Annotated[CallToolResult, SuspendedSession]:
    """Suspend a session now (default: your default session), as its idle timeout would: its sandbox
    stops and its files stay, freeing the machine or cluster until you need it again. The next call on the
    session resumes it, and that call's result says so. {resume_note}"""
    session = await context().registry.suspend(current_principal.get(), session_id)
    return reply(SuspendedSession(session_id=session.id))


async def session_info(session_id: SessionId = None) -> Annotated[CallToolResult, SessionDescription]:
    """Describe a session (default: your default session, created if needed): its provider, working
    directory, network access, labels, idle timeout, when it expires or is suspended, its state (running or
    suspended), and whether its Python kernel runs. Asking does not resume a suspended session."""
    async with context().registry.peek(current_principal.get(), session_id) as session:
        return await _described(session)


async def _described(session: Session) -> CallToolResult:
    described = SessionDescription.of(session, WORKDIR)
    if session.suspended:
        described.python_kernel = f"none while suspended: the next call resumes the session. {suspension.RESUME_NOTE}"
        return reply(described)
    described.background_processes = await keeps_background(session.sandbox)
    if not described.background_processes:
        described.python_kernel = (
            "one python3 process per call: this sandbox ends every process a call leaves running, so variables "
            "do not persist between calls and commands cannot continue as jobs"
        )
    elif await kernel.running(session.sandbox):
        described.python_kernel = (
            "stateful kernel kept for the session, running (variables from earlier calls are there)"
        )
    else:
        described.python_kernel = "stateful kernel kept for the session, started by the next execute_python call"
    return reply(described)


async def fork_session(session_id: SessionId = None) -> Annotated[CallToolResult, ForkedSession]:
    """Make a new session that starts with a copy of a session's files (/app; default: your default session)
    and returns its session_id. The fork has the same network access, idle timeout and labels, and a sandbox
    of its own: changes in either never show in the other. Only files are copied, not /tmp: no process that
    runs in the source runs in the fork, and its Python kernel starts fresh. The source keeps running while it
    is copied, so a file being written at that moment may arrive as it was mid-write: let writing commands
    finish first. The fork counts against your number of open sessions."""
    principal = current_principal.get()
    registry = context().registry
    source = await registry.resolve(principal, session_id)
    forked = await registry.fork(principal, source.id)
    described = SessionDescription.of(forked, WORKDIR)
    return reply(ForkedSession(**described.model_dump(), forked_from=source.id))


CREATES = ToolAnnotations(readOnlyHint=False, destructiveHint=False, idempotentHint=False)
CLOSES = ToolAnnotations(readOnlyHint=False, destructiveHint=True, idempotentHint=False)
SUSPENDS = ToolAnnotations(readOnlyHint=False, destructiveHint=True, idempotentHint=True)
TOOLS = (
    ToolSpec(create_session, CREATES, {"ttl_seconds": idle_type}),
    ToolSpec(list_sessions, READS),
    ToolSpec(close_session, CLOSES),
    ToolSpec(fork_session, CREATES),
    ToolSpec(suspend_session, SUSPENDS),
    ToolSpec(session_info, READS),
)
