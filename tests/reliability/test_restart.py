"""Restart: the server is killed (SIGKILL) in the middle of load and started again on the same state; two
server processes share one backend and serve the same sessions interchangeably."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import time
from pathlib import Path

import pytest

from tests.reliability.conftest import Alive, Serve
from tests.reliability.workload import Tally, Worker, connect, make_workers, text_of, tool, write_token_file

SESSIONS_EACH = 2


@pytest.fixture(params=["local", "kubernetes", "kubernetes-real", "kubernetes-sandboxd"])
def backend(request: pytest.FixtureRequest) -> str:
    """Restarts and replicas also on the real control plane, python-runtime and sandboxd pods (the load tests stay on
    the two cheaper backends)."""
    return str(request.param)


async def start_sessions(mcp_url: str, workers: list[Worker]) -> None:
    async def start(worker: Worker) -> None:
        async with connect(mcp_url, worker.token) as client:
            await worker.create_sessions(client, SESSIONS_EACH)
            for session_id in worker.sessions:
                await worker.one_call(client, "upload_file", session_id)

    await asyncio.gather(*map(start, workers))


async def load_until(mcp_url: str, worker: Worker, tally: Tally, deadline: float) -> None:
    """Calls until the deadline, through a server that may die under them; the client's own end may fail too."""
    with contextlib.suppress(Exception):
        async with asyncio.timeout(deadline - time.monotonic() + 4), connect(mcp_url, worker.token) as client:
            await worker.run_calls(client, 10**6, tally, call_limit=3, until=deadline)


async def test_sigkill_mid_load_then_restart_finds_every_session(
    serve: Serve, alive: Alive, tmp_path: Path, backend: str
) -> None:
    before = alive()
    workers = make_workers(4)
    token_file = write_token_file(tmp_path, workers)
    tally = Tally()
    with serve(token_file) as first:
        await start_sessions(first.mcp_url, workers)
        deadline = time.monotonic() + 2.5
        load = asyncio.gather(*(load_until(first.mcp_url, worker, tally, deadline) for worker in workers))
        await asyncio.sleep(1.5)
        assert tally.ok > 0, tally.summary()
        os.kill(first.pid, signal.SIGKILL)
        await load
    assert tally.wrong == [], tally.summary()
    sessions = {session_id for worker in workers for session_id in worker.sessions}
    assert len(alive() - before) == len(sessions) == len(workers) * SESSIONS_EACH, "a sandbox lost or duplicated"

    after = Tally()

    async def resume(mcp_url: str, worker: Worker) -> None:
        async with connect(mcp_url, worker.token) as client:
            listed = (await tool(client, "list_sessions"))["sessions"]
            assert sorted(entry["session_id"] for entry in listed) == sorted(worker.sessions)
            for session_id, files in worker.sessions.items():
                for path, content in files.items():
                    downloaded = await tool(client, "download_file", path=path, session_id=session_id)
                    assert downloaded["content"] == content
            await worker.run_calls(client, 12, after, call_limit=30)
            await worker.close_sessions(client)

    with serve(token_file) as second:
        await asyncio.gather(*(resume(second.mcp_url, worker) for worker in workers))
    assert (after.ok, after.wrong, after.broken, dict(after.refused)) == (48, [], [], {})
    assert alive() - before == set()


async def test_two_replicas_serve_the_same_sessions_interchangeably(serve: Serve, alive: Alive, tmp_path: Path) -> None:
    # On the real control plane a claim is deleted at once and its Sandbox and Pod by the garbage collector a moment
    # later: the closing replica ends the pod's agent first, so the other one's channel breaks and it answers
    # not_found rather than running a command in the dying pod.
    before = alive()
    workers = make_workers(3)
    token_file = write_token_file(tmp_path, workers)
    tally = Tally()
    with serve(token_file) as first, serve(token_file) as second:

        async def alternate(worker: Worker) -> None:
            async with connect(first.mcp_url, worker.token) as a, connect(second.mcp_url, worker.token) as b:
                await worker.create_sessions(a, SESSIONS_EACH)
                for round_ in range(16):
                    client = (a, b)[round_ % 2]
                    kind = ("upload_file", "download_file", "execute", "execute_python")[round_ % 4]
                    await worker.checked_call(client, kind, tally, call_limit=30)
                for replica in (a, b):
                    listed = (await tool(replica, "list_sessions"))["sessions"]
                    assert sorted(entry["session_id"] for entry in listed) == sorted(worker.sessions)
                closed = sorted(worker.sessions)
                await worker.close_sessions(b)
                for session_id in closed:
                    # The other replica still holds the session in its cache, and answers as the closing one would.
                    used = await a.call_tool("execute", {"command": "true", "session_id": session_id})
                    assert used.isError
                    assert text_of(used).startswith("not_found:"), text_of(used)
                    info = await a.call_tool("session_info", {"session_id": session_id})
                    assert text_of(info).startswith("not_found:"), text_of(info)
                assert (await tool(a, "list_sessions"))["sessions"] == []

        await asyncio.gather(*map(alternate, workers))
    assert (tally.ok, tally.wrong, tally.broken, dict(tally.refused)) == (48, [], [], {}), tally.summary()
    assert alive() - before == set()


async def test_a_server_killed_mid_job_loses_nothing_of_it(serve: Serve, tmp_path: Path) -> None:
    """A job and a Python cell started through one server process are followed to their end through the next:
    their whole output, their exit and the kernel's variables are still there."""
    workers = make_workers(1)
    token_file = write_token_file(tmp_path, workers)
    command = "for i in 1 2 3 4; do echo step $i; sleep 0.5; done; echo done >&2; exit 3"
    with serve(token_file) as first:
        async with connect(first.mcp_url, workers[0].token) as client:
            await tool(client, "execute_python", code="kept = 'across restarts'")
            job = await tool(client, "execute", command=command, background=True)
            cell = await tool(client, "execute_python", code="import time\ntime.sleep(2)\nprint(kept)", background=True)
        os.kill(first.pid, signal.SIGKILL)
    with serve(token_file) as second:
        async with connect(second.mcp_url, workers[0].token) as client:
            ended = await tool(client, "job_wait", job_id=job["job_id"], timeout=30)
            assert (ended["stdout"], ended["stderr"], ended["exit_code"], ended["state"]) == (
                "step 1\nstep 2\nstep 3\nstep 4\n",
                "done\n",
                3,
                "exited",
            )
            printed = await tool(client, "job_wait", job_id=cell["job_id"], timeout=30)
            assert (printed["stdout"], printed["state"]) == ("across restarts\n", "exited")
            later = await tool(client, "execute_python", code="kept")
            assert (later["value"], later["kernel"]) == ("'across restarts'", "kept")
