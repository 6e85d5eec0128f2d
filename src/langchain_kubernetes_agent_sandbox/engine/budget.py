"""Every time limit and margin of the engine, named in one place.

A run's own limit is what the caller asked for (checked against the server's maximum once, where it enters);
everything the engine adds on top of it is one of these margins, so that no layer invents a number of its own.
"""

from __future__ import annotations

AGENT_REQUEST = 10.0
"""Seconds a sandbox's agent has to answer a request (start, read, signal): it answers at once unless its sandbox
is starved, and then a typed error is better than a hung call."""
AGENT_QUIET = 5.0
"""Seconds a followed process's connection may bring nothing before the agent is asked whether it still hears it
(then `AGENT_REQUEST` for the answer): a relay in between can stall without ending."""
AGENT_CONNECT = 20.0
"""Seconds to reach a sandbox's agent, starting it (a python3) when none runs."""
END_OF_RUN = 5.0
"""Seconds a run's report may take after its limit (the kill, the last output, the kernel's grace) before the
server stops waiting for it: the agent itself ends the run at its limit."""

# The shell fallback (runtimes with nothing but one-shot commands): each job or cell is a script run by
# `Sandbox.run_script` with the run's own limit plus one of these.
SCRIPT = 15.0
"""Seconds a job script may take beyond what it waits for: starting a shell, reading the job's files."""
KILL_GRACE = 5.0
"""Seconds between the TERM at a shell job's timeout (or cancel) and the KILL that follows."""
CANCEL = SCRIPT + 10.0
"""Seconds a cancel script may take: two 2-second waits for the job to end, then the report."""
KERNEL_REPORT = 4.0
"""Seconds past a cell's limit that a caller still waits for the kernel's report: its own interrupt grace (3 s)
and a second to write it."""
CELL_SCRIPT = 30.0
"""Seconds a cell's script may take beyond its wait: starting a kernel (up to 10 s) and reporting."""
ONCE_GRACE = 5.0
"""Seconds a one-process cell's job may run past the cell's limit, so that the cell's own timeout acts first."""
PROBE = 15.0
"""Seconds a small probe (does a kernel run, are background processes kept) may take."""


def longest_job_limit(longest_run: float) -> float:
    """The longest limit a shell job can have and still end within one run limited to `longest_run` seconds."""
    return longest_run - KILL_GRACE - 1 - SCRIPT
