"""Every time limit and margin of the engine, named in one place.

A run's own limit is what the caller asked for (checked against the server's maximum once, where it enters);
everything the engine adds on top of it is one of these margins, so that no layer invents a number of its own.
"""

from __future__ import annotations

AGENT_REQUEST = 10.0
"""Seconds a sandbox's agent has to answer a request (start, read, signal): it answers at once unless its sandbox
is starved, and then a typed error is better than a hung call."""
AGENT_CONNECT = 20.0
"""Seconds to reach a sandbox's agent, starting it (a python3) when none runs."""
END_OF_RUN = 5.0
"""Seconds a run's report may take after its limit (the kill, the last output, the kernel's grace) before the
server stops waiting for it: the agent itself ends the run at its limit."""
