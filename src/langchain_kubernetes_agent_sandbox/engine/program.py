"""The agent program as shipped in this package: its files, where they go in a sandbox, and their digest."""

from __future__ import annotations

import hashlib
from importlib import resources

from .wire import PROGRAM_FILES

AGENT_DIR = "/tmp/.kas/agent"
"""Where the agent's files and its socket live in a sandbox: its own /tmp, which lasts as long as it does."""
FILES: dict[str, bytes] = {name: resources.files(__package__).joinpath(name).read_bytes() for name in PROGRAM_FILES}
DIGEST = hashlib.sha256(b"".join(FILES[name] for name in PROGRAM_FILES)).hexdigest()
"""What a genuine agent of this package says it runs (see `agent.program_digest`)."""
