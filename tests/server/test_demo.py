"""The README's main-job command: the demo drives the stdio server through a real MCP client, end to end."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path


def test_demo_runs_every_step_of_the_main_job(local_state_dir: Path) -> None:
    result = subprocess.run(
        [str(Path(sys.executable).parent / "kubernetes-agent-sandbox"), "demo", "--state-dir", str(local_state_dir)],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    out = result.stdout
    for step in ("create_session", "upload_file", "execute_python", "download_file", "list_sessions", "close_session"):
        assert f": {step}(" in out, step
    assert "4 cities, mean 17.5 C, warmest Perth" in out
    assert '"warmest": "Perth"' in out
    assert "exited 124 (timed_out=True)" in out
    assert not list(local_state_dir.glob("sandboxes/*/sandbox.json")), "the demo left a sandbox behind"
