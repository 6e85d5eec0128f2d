"""The README's main-job command: the demo drives the stdio server through a real MCP client, end to end."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

HAS_MATPLOTLIB = subprocess.run(["/usr/bin/python3", "-c", "import matplotlib"], check=False).returncode == 0


def test_demo_runs_every_step_of_the_main_job_a_figure_and_a_detached_job(local_state_dir: Path) -> None:
    result = subprocess.run(
        [str(Path(sys.executable).parent / "kubernetes-agent-sandbox"), "demo", "--state-dir", str(local_state_dir)],
        capture_output=True,
        text=True,
        timeout=180,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    out = result.stdout
    steps = ("create_session", "upload_file", "execute_python", "download_file", "job_status", "job_wait")
    for step in (*steps, "fork_session", "suspend_session", "list_sessions", "close_session"):
        assert f": {step}(" in out, step
    assert "4 cities, mean 17.5 C, warmest Perth" in out
    assert '"warmest": "Perth"' in out
    assert "exited 124 (timed_out)" in out
    assert "was suspended and has been resumed for this call" in out
    assert "summary.json\n      weather.csv" in out
    if HAS_MATPLOTLIB:
        assert "plotted 4 cities" in out
        assert re.search(r"\n   -> image content: \d+ bytes, image/png\n", out)
        saved = re.search(
            r"the chart came back as a \d+-byte image \(image/png\), saved in the sandbox as "
            r"(/tmp/\.kas/jobs/j-[0-9a-f]{12}/figure-1\.png)",
            out,
        )
        assert saved, out
        assert f"[figures: {saved[1]} (640x480); 1 shown below]" in out
    else:
        assert "no figure came back" in out
    job = re.search(r"\[still running as job (j-[0-9a-f]{12}) after", out.split("== 7.")[-1])
    assert job, out
    assert f": job_status(job_id='{job[1]}'" in out
    waited = out.split(f": job_wait(job_id='{job[1]}'")[-1]
    assert "built\n      [exit code 0]" in waited
    assert f"the detached job {job[1]} ended (exited) with exit code 0" in out
    forked = out.split("== 11.")[-1].split("== 12.")[0]
    assert {"summary.json", "weather.csv", "fork-only.txt"} <= set(forked.split())
    assert "the source session never saw the fork's file; 2 session(s) were open" in out
    assert not list(local_state_dir.glob("sandboxes/*/sandbox.json")), "the demo left a sandbox behind"
