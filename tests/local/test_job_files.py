"""Jobs keep their files in the sandbox; folders of jobs that ended over a day ago are pruned now and then."""

from __future__ import annotations

from pathlib import Path

import pytest

from langchain_kubernetes_agent_sandbox.engine import shell_jobs as jobs
from langchain_kubernetes_agent_sandbox.providers.local import LocalProvider


async def test_folders_of_long_finished_jobs_are_pruned(local_state_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    sandbox = await LocalProvider(local_state_dir).create()
    try:
        old = await jobs.start(sandbox, "echo old", timeout=10, wait=5)
        running = await jobs.start(sandbox, "sleep 30", timeout=60, wait=0)
        await sandbox.run(f"touch -d '2 days ago' {jobs.job_dir(old.job_id)}/exit {jobs.job_dir(running.job_id)}/cmd")
        monkeypatch.setattr(jobs.secrets, "randbelow", lambda _n: 0)
        recent = await jobs.start(sandbox, "echo new", timeout=10, wait=5)
        assert not await sandbox.exists(jobs.job_dir(old.job_id))
        assert await sandbox.exists(jobs.job_dir(running.job_id))
        assert (await jobs.status(sandbox, recent.job_id)).result.stdout == "new\n"
        await jobs.cancel(sandbox, running.job_id)
    finally:
        await sandbox.terminate()
