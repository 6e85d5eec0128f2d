"""Whether a sandbox keeps the processes a command leaves running, which jobs and the Python kernel need.

Some runtimes end every process a request started when it returns. There a command cannot detach and a kernel
cannot outlive its call, so the tools fall back to running each call to its end in one process. Providers that
know say so (`Sandbox.keeps_background`); otherwise two shell commands find out, once per sandbox and process:
the first leaves a uniquely named `sleep` running, the second looks for it.
"""

from __future__ import annotations

import secrets

from ..errors import SandboxError, TimedOutError
from ..results import CommandResult
from ..sandbox import Sandbox
from . import budget
from .memo import SandboxMemo

_found: SandboxMemo[bool] = SandboxMemo()
"""What probing found (a sandbox's runtime does not change)."""


async def keeps_background(sandbox: Sandbox) -> bool:
    """Whether processes a command of `sandbox` detaches outlive that command."""
    known = sandbox.keeps_background
    if known is not None:
        return known
    found = _found.get(sandbox)
    if found is None:
        marker = f"{secrets.randbelow(10**6)}"
        leave_running = f"setsid sleep 30.{marker} </dev/null >/dev/null 2>&1 & echo $!"
        started = _answered(await sandbox.run_script(leave_running, timeout=budget.PROBE))
        pid = started.stdout.strip()
        if not pid.isdigit():
            raise SandboxError(
                f"The sandbox could not start a background process ({started.stderr.strip()[:300] or 'no message'})."
            )
        # The same pid with the same command line in a later command: the process outlived the first one.
        kept = _answered(
            await sandbox.run_script(
                f"grep -qa 'sleep.30\\.{marker}' /proc/{pid}/cmdline 2>/dev/null && kill {pid} && echo kept",
                timeout=budget.PROBE,
            )
        )
        found = kept.stdout.strip() == "kept"
        _found.put(sandbox, found)
    return found


def _answered(result: CommandResult) -> CommandResult:
    """`result`, unless the sandbox did not answer in time: then nothing can be concluded, so nothing is kept."""
    if result.timed_out:
        raise TimedOutError(
            "The sandbox did not answer in time while checking whether it keeps background processes: "
            "try again in a moment."
        )
    return result
