"""Commands as the runtime must receive them, and its answers as results.

The reference runtime splits a command with `shlex` and runs it without a shell, so every command is wrapped
in `/bin/sh -c`, under `timeout -s KILL`, which enforces the limit even on runtimes that ignore
`timeout_seconds`; the runtime's own limit is a second later, so the wrapper normally fires first and the
output written so far comes back with the answer. The runtime execs `timeout` itself, and the shell changes
directory and exports the variables, so a command costs two processes in the pod (`timeout` and the shell);
only variable names the shell cannot export need `env` in between.
"""

from __future__ import annotations

import re
import shlex
from collections.abc import Mapping

from k8s_agent_sandbox.models import ExecutionResult

from ...output import OutputLimit, cap
from ...results import TIMEOUT_EXIT_CODE, CommandResult

KILLED_EXIT_CODE = 137
"""What `timeout -s KILL` leaves behind: it kills its whole process group, itself included."""

RUNTIME_GRACE = 1.0
"""The runtime's own limit trails the in-pod wrapper's by this much."""


_SHELL_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_SHELL_OWNED = {"IFS", "PPID", "OPTIND", "OPTARG", "LINENO", "PS1", "PS2", "PS4", "ENV", "PWD", "OLDPWD"}
"""Variables the shell itself sets or reads while parsing: they go through `env`, as an export would differ."""


def seconds(limit: float) -> str:
    """A duration as `timeout` reads it: plain decimal, never exponent notation."""
    return f"{limit:.3f}".rstrip("0").rstrip(".") or "0"


def wrap(command: str, limit: float, cwd: str, env: Mapping[str, str]) -> str:
    """One argv string for a shell-less runtime: `timeout -s KILL` around `/bin/sh -c`, which changes
    directory, exports the variables and then runs the command, all on the command's first line (so that
    `$LINENO`, comments and here-documents in it behave as in `/bin/sh -c command`)."""
    exported = {name: value for name, value in env.items() if _SHELL_NAME.match(name) and name not in _SHELL_OWNED}
    others = [f"{name}={value}" for name, value in env.items() if name not in exported]
    steps = [f"cd {shlex.quote(cwd)} || exit 1"]
    steps += [f"export {name}={shlex.quote(value)}" for name, value in exported.items()]
    script = "; ".join([*steps, command])
    argv = ["timeout", "-s", "KILL", seconds(limit), *(["env", *others] if others else []), "/bin/sh", "-c", script]
    return shlex.join(argv)


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
    """A run whose answer never came back (the deadline passed, or the router gave up first): timed out, output
    unknown. The message gives the time actually waited, which a router's 504 can make far shorter than `limit`."""
    message = f"[no answer after {duration:.1f} s (the command's limit was {limit:g} s): {reason}]\n"
    return CommandResult(
        stdout="",
        stderr=message,
        exit_code=TIMEOUT_EXIT_CODE,
        duration=duration,
        timed_out=True,
        stderr_bytes=len(message),
    )
