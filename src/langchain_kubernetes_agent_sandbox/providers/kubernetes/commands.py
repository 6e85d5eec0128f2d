"""Commands as the runtime must receive them, and its answers as results.

The reference runtime splits a command with `shlex` and runs it without a shell, so every command is wrapped
in `/bin/sh -c`. Inside, `timeout -s KILL` enforces the limit even on runtimes that ignore `timeout_seconds`;
the runtime's own limit is a second later, so the wrapper normally fires first and the output written so far
comes back with the answer.
"""

from __future__ import annotations

import shlex
from collections.abc import Mapping

from k8s_agent_sandbox.models import ExecutionResult

from ...output import OutputLimit, cap
from ...results import TIMEOUT_EXIT_CODE, CommandResult

KILLED_EXIT_CODE = 137
"""What `timeout -s KILL` leaves behind: it kills its whole process group, itself included."""

RUNTIME_GRACE = 1.0
"""The runtime's own limit trails the in-pod wrapper's by this much."""


def wrap(command: str, limit: float, cwd: str, env: Mapping[str, str]) -> str:
    """One argv for a shell-less runtime: `/bin/sh -c` around cd, the KILL timeout, env and the command."""
    assignments = " ".join(shlex.quote(f"{name}={value}") for name, value in env.items())
    inner = f"exec timeout -s KILL {limit:g} env {assignments} /bin/sh -c {shlex.quote(command)}"
    script = f"cd {shlex.quote(cwd)} || exit 1; {inner}"
    return shlex.join(["/bin/sh", "-c", script])


def result_of(answer: ExecutionResult, limit: float, duration: float, output: OutputLimit) -> CommandResult:
    """The runtime's answer as a result: killed at the limit means timed out with exit code 124."""
    timed_out = bool(answer.timed_out) or (answer.exit_code == KILLED_EXIT_CODE and duration >= limit * 0.98)
    stdout, stderr = cap(answer.stdout.encode(), output), cap(answer.stderr.encode(), output)
    return CommandResult(
        stdout=stdout.text(),
        stderr=stderr.text(),
        exit_code=TIMEOUT_EXIT_CODE if timed_out else answer.exit_code,
        duration=duration,
        timed_out=timed_out,
        stdout_bytes=stdout.total_bytes,
        stderr_bytes=stderr.total_bytes,
        dropped_bytes=stdout.dropped_bytes + stderr.dropped_bytes,
    )


def unanswered(limit: float, duration: float, reason: str) -> CommandResult:
    """A run whose answer never came back before the deadline: timed out, output unknown."""
    message = f"[timed out after {limit:g} s: {reason}]\n"
    return CommandResult(
        stdout="",
        stderr=message,
        exit_code=TIMEOUT_EXIT_CODE,
        duration=duration,
        timed_out=True,
        stderr_bytes=len(message),
    )
