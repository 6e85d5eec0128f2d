"""Processes: started, followed while they write, given input and signals, found again by id."""

from __future__ import annotations

import asyncio
import signal
import time

import pytest

from langchain_kubernetes_agent_sandbox import InvalidArgumentError, NotFoundError, Sandbox, SandboxProvider
from langchain_kubernetes_agent_sandbox.engine import background


@pytest.fixture
async def sandbox(sandbox: Sandbox) -> Sandbox:
    """The row's sandbox, where processes can live at all (the last test asserts the refusal elsewhere)."""
    if not await background.keeps_background(sandbox):
        pytest.skip("this runtime keeps no background processes, so it refuses processes (asserted below)")
    return sandbox


async def test_a_runtime_without_background_processes_refuses_them_with_the_reason(provider: SandboxProvider) -> None:
    sandbox = await provider.create()
    try:
        if await background.keeps_background(sandbox):
            assert (await (await sandbox.start("echo kept", timeout=10)).wait(timeout=10)) is not None
            return
        with pytest.raises(InvalidArgumentError, match="use run"):
            await sandbox.start("sleep 1", timeout=10)
        assert (await sandbox.run("echo still runs")).stdout == "still runs\n"
    finally:
        await sandbox.terminate()


async def test_a_started_process_streams_its_output_in_order_while_it_runs(sandbox: Sandbox) -> None:
    process = await sandbox.start("echo first; echo warn >&2; sleep 2; echo second", timeout=30)
    seen: list[tuple[int, bytes, float]] = []
    started = time.monotonic()
    report = await process.follow(wait=30, on_output=lambda stream, data: seen.append((stream, data, time.monotonic())))
    assert report.exit is not None
    assert report.exit.state == "exited"
    assert (report.result.stdout, report.result.stderr, report.result.exit_code) == ("first\nsecond\n", "warn\n", 0)
    stdout = b"".join(data for stream, data, _ in seen if stream == 0)
    assert stdout == b"first\nsecond\n"
    first_seen = next(at for stream, data, at in seen if stream == 0 and b"first" in data)
    assert first_seen - started < 1.5, "the first line came only when the process ended"


async def test_a_process_is_found_again_by_id_and_followed_from_a_cursor(sandbox: Sandbox) -> None:
    process = await sandbox.start("echo one; sleep 1; echo two", timeout=30)
    early = await process.follow(wait=0.5)
    assert early.running
    assert early.result.stdout == "one\n"
    again = await sandbox.process(process.id)
    rest = await again.follow(wait=30, cursor=early.cursor)
    assert (rest.result.stdout, rest.exit is not None) == ("two\n", True)
    with pytest.raises(NotFoundError):
        await (await sandbox.process("j-000000000000")).follow(wait=0)
    with pytest.raises(NotFoundError):
        await sandbox.process("../../etc/passwd")


async def test_signals_reach_the_process_group_and_wait_has_a_timeout(sandbox: Sandbox) -> None:
    process = await sandbox.start("trap 'echo got-term; exit 7' TERM; sleep 30 & wait", timeout=60)
    assert await process.wait(timeout=0.5) is None
    await process.signal(signal.SIGTERM)
    ended = await process.wait(timeout=20)
    assert ended is not None
    assert (ended.result.stdout, ended.result.exit_code) == ("got-term\n", 7)


async def test_a_process_past_its_limit_is_killed_with_its_output_kept(sandbox: Sandbox) -> None:
    process = await sandbox.start("echo before; sleep 30", timeout=1)
    ended = await process.wait(timeout=20)
    assert ended is not None
    assert (ended.result.stdout, ended.result.exit_code, ended.result.timed_out) == ("before\n", 124, True)


async def test_stdin_reaches_the_process_where_the_runtime_allows_it(sandbox: Sandbox) -> None:
    if await sandbox.agent() is None:
        with pytest.raises(InvalidArgumentError, match="one-shot commands"):
            await sandbox.start("cat", timeout=10, stdin=True)
        return
    process = await sandbox.start("tr a-z A-Z", timeout=30, stdin=True)
    await process.write_stdin(b"hello ")
    await process.write_stdin(b"world\n")
    await process.close_stdin()
    ended = await process.wait(timeout=20)
    assert ended is not None
    assert ended.result.stdout == "HELLO WORLD\n"


async def test_processes_run_side_by_side(sandbox: Sandbox) -> None:
    processes = [await sandbox.start(f"sleep 1; echo {n}", timeout=30) for n in range(4)]
    started = time.monotonic()
    reports = await asyncio.gather(*(process.wait(timeout=30) for process in processes))
    assert [report.result.stdout for report in reports if report] == [f"{n}\n" for n in range(4)]
    assert time.monotonic() - started < 8


async def test_one_process_followed_twice_at_once_reports_its_end_to_both(sandbox: Sandbox) -> None:
    process = await sandbox.start("sleep 1; echo end", timeout=30)
    first, second = await asyncio.gather(process.wait(timeout=20), (await sandbox.process(process.id)).wait(timeout=20))
    assert first is not None
    assert second is not None
    assert first.result.stdout == second.result.stdout == "end\n"
