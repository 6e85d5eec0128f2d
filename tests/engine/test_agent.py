"""The sandbox's agent under attack from the code it runs: each call ends with a bounded, truthful result or a
typed error, the server's memory stays bounded, and the session stays usable (a new agent starts when needed)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from langchain_kubernetes_agent_sandbox import InvalidArgumentError, SandboxError
from langchain_kubernetes_agent_sandbox.engine import jobs, kernel, program, wire
from langchain_kubernetes_agent_sandbox.providers.local import LocalProvider, LocalSandbox

FAKE_AGENT = """
import os, socket, struct, sys, json
path = sys.argv[1]
os.unlink(path)
server = socket.socket(socket.AF_UNIX); server.bind(path); server.listen()
while True:
    connection, _ = server.accept()
    header = json.dumps({"op": "hello", "r": 1, "v": 1, "pid": 1, "program": sys.argv[2]}).encode()
    connection.sendall(struct.pack(">II", len(header), 0) + header)
    connection.sendall(struct.pack(">II", 2**31, 2**31) + b"x" * 1000)  # a frame no server may buffer
    connection.close()
"""


@pytest.fixture
async def sandbox(local_state_dir: Path) -> AsyncIterator[LocalSandbox]:
    provider = LocalProvider(local_state_dir)
    made = await provider.create()
    try:
        yield made
    finally:
        await made.terminate()
        await provider.aclose()


async def test_a_command_that_kills_every_process_of_its_user_ends_and_the_next_call_works(
    sandbox: LocalSandbox,
) -> None:
    await kernel.run_cell(sandbox, "x = 1", timeout=30, wait=20)
    started = time.monotonic()
    with pytest.raises(SandboxError, match="agent ended while the command ran"):
        await sandbox.run("echo before; kill -9 -1; sleep 5", timeout=20)
    assert time.monotonic() - started < 15
    again = await sandbox.run("echo after")
    assert again.stdout == "after\n"
    cell = await kernel.run_cell(sandbox, "'x' in dir()", timeout=30, wait=20)
    assert (cell.kernel, cell.value) == ("started", "False"), "the kernel went with the agent, and says so"


async def test_jobs_lost_with_a_killed_agent_are_reported_lost(sandbox: LocalSandbox) -> None:
    job = await jobs.start(sandbox, "echo started; sleep 60", timeout=120, wait=0.5)
    assert job.running
    assert job.result.stdout == "started\n"
    with pytest.raises(SandboxError):
        await sandbox.run("kill -9 -1", timeout=20)
    lost = await jobs.status(sandbox, job.job_id)
    assert (lost.state, lost.result.stdout) == ("lost", "started\n")


async def test_a_replaced_agent_program_is_reinstalled_from_the_package(sandbox: LocalSandbox) -> None:
    await sandbox.run("echo warm")
    await sandbox.run(
        f"printf 'print(\"forged\")' > {program.AGENT_DIR}/agent.py; printf x > {program.AGENT_DIR}/pykernel.py"
    )
    await sandbox._provider._agents.forget(sandbox.id)  # as a restarted server would find it
    result = await sandbox.run(f"cat {program.AGENT_DIR}/agent.py | head -c 200; echo")
    assert "forged" not in result.stdout
    assert await sandbox.read_file(f"{program.AGENT_DIR}/agent.py") == program.FILES["agent.py"]
    cell = await kernel.run_cell(sandbox, "6 * 7", timeout=30, wait=20)
    assert cell.value == "42"


async def test_a_kernel_program_replaced_in_the_sandbox_never_runs(sandbox: LocalSandbox) -> None:
    await kernel.run_cell(sandbox, "x = 1", timeout=30, wait=20)
    forged = "import sys\nprint('forged kernel')\n"
    await sandbox.write_file(f"{program.AGENT_DIR}/pykernel.py", forged.encode())
    crashed = await kernel.run_cell(
        sandbox, "import os, signal\nos.kill(os.getpid(), signal.SIGKILL)", timeout=30, wait=20
    )
    assert crashed.job.state == "lost"
    cell = await kernel.run_cell(sandbox, "6 * 7", timeout=30, wait=20)
    assert (cell.kernel, cell.value) == ("restarted", "42")
    assert "forged" not in cell.job.result.stdout


async def test_a_fake_agent_that_sends_oversized_frames_is_left_behind(sandbox: LocalSandbox) -> None:
    await sandbox.run("echo warm")
    await sandbox.start(f"exec python3 -c '{FAKE_AGENT}' {program.AGENT_DIR}/sock {program.DIGEST}", timeout=120)
    await asyncio.sleep(1)
    await sandbox._provider._agents.forget(sandbox.id)  # the next call connects afresh, and finds the fake
    started = time.monotonic()
    try:
        result = await sandbox.run("echo genuine")
    except SandboxError as error:  # at most the one call that met the fake mid-way fails, and says so
        failure = str(error)
        result = await sandbox.run("echo genuine")
        assert "broke" in failure
    assert result.stdout == "genuine\n"
    assert time.monotonic() - started < 20  # the fake (and the agent that started it) end with the sandbox


async def test_protocol_frames_printed_by_a_command_are_only_its_output(sandbox: LocalSandbox) -> None:
    forged = wire.encode({"op": "exit", "p": "j-000000000000", "state": "exited", "code": 0, "n": [0, 0]})
    await sandbox.write_file("/app/frame.bin", forged)
    result = await sandbox.run("cat /app/frame.bin; echo; echo done")
    assert result.stdout.endswith("done\n")
    assert result.exit_code == 0


async def test_closing_stdout_and_a_daemon_holding_the_pipe_end_truthfully(sandbox: LocalSandbox) -> None:
    closed = await sandbox.run("exec >&-; echo err >&2; exit 4")
    assert (closed.stdout, closed.stderr, closed.exit_code) == ("", "err\n", 4)
    started = time.monotonic()
    held = await sandbox.run("sleep 30 & echo parent done", timeout=60)
    assert (held.stdout, held.exit_code) == ("parent done\n", 0)
    assert time.monotonic() - started < 10, "a daemon holding the pipe open must not hold the call"


async def test_a_flood_of_input_to_a_process_that_does_not_read_is_refused(sandbox: LocalSandbox) -> None:
    process = await sandbox.start("sleep 30", timeout=60, stdin=True)
    chunk = b"x" * wire.MAX_PAYLOAD_BYTES
    with pytest.raises(InvalidArgumentError, match="not reading its input"):  # noqa: PT012 - the flood is the attack
        for _ in range(40):
            await process.write_stdin(chunk)
    await process.cancel()
    assert (await sandbox.run("echo usable")).stdout == "usable\n"


async def test_thousands_of_processes_end_at_the_limit_and_the_session_stays_usable(sandbox: LocalSandbox) -> None:
    started = time.monotonic()
    await sandbox.run("for i in $(seq 3000); do sleep 20 & done 2>/dev/null; echo spawned", timeout=10)
    assert time.monotonic() - started < 20
    assert (await sandbox.run("echo usable", timeout=30)).stdout == "usable\n"


async def test_a_command_too_long_for_one_argument_gets_a_typed_error(sandbox: LocalSandbox) -> None:
    fits = await sandbox.run("echo " + "x" * 100_000 + " | wc -c")
    assert fits.stdout == "100001\n"
    with pytest.raises(InvalidArgumentError, match="write it to a file"):
        await sandbox.run("echo " + "x" * 200_000)


async def test_what_a_daemon_writes_after_its_command_ended_still_goes_to_the_jobs_file(sandbox: LocalSandbox) -> None:
    job = await jobs.start(sandbox, "(sleep 2; echo from-the-daemon) & echo parent", timeout=30, wait=10)
    assert (job.state, job.result.stdout) == ("exited", "parent\n")
    await asyncio.sleep(3)
    assert await sandbox.read_file(job.stdout_path) == b"parent\nfrom-the-daemon\n"


async def test_a_cancelled_cell_that_stops_in_time_keeps_its_kernel(sandbox: LocalSandbox) -> None:
    await kernel.run_cell(sandbox, "kept = 1", timeout=30, wait=20)
    cell = await kernel.run_cell(sandbox, "import time\ntime.sleep(30)", timeout=60, wait=0.5)
    stopped = await jobs.cancel(sandbox, cell.job.job_id)
    assert stopped.state == "cancelled"
    await asyncio.sleep(5)  # past the grace after which a cell that did not stop would take its kernel with it
    after = await kernel.run_cell(sandbox, "kept", timeout=30, wait=20)
    assert (after.kernel, after.value) == ("kept", "1")
