"""The execution engine: processes, jobs and the Python kernel, run by an agent inside each sandbox (see
`agent.py`) over one framed channel (`wire.py`, `channel.py`), or by shell commands and files where a runtime
offers nothing else."""
