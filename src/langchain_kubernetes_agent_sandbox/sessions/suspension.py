"""What suspending a session means to its user, said once: tool descriptions and results quote these texts.

A suspended session's processes are stopped (its pod deleted on Kubernetes) and its files kept; the next call
on it resumes it. `resumed` tells the server's reply, within one tool call, that the call had to resume it.
"""

from __future__ import annotations

from contextvars import ContextVar

LOSES = "running processes and jobs end, and the Python kernel's variables are lost"
KEEPS = "files under /app are kept (files elsewhere may not be)"
RESUME_NOTE = f"A resume starts the sandbox afresh: {LOSES}; {KEEPS}."

resumed: ContextVar[str | None] = ContextVar("resumed", default=None)
"""The id of the session the current tool call resumed, if it resumed one."""


def resumed_note(session_id: str) -> str:
    return f"Session {session_id} was suspended and has been resumed for this call. {RESUME_NOTE}"
