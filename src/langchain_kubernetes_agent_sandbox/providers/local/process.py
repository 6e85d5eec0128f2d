"""Run one launcher process to completion: bounded output, a wall-clock limit that kills the whole group."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from ...output import CappedBuffer, OutputLimit

_READ_CHUNK = 256 * 1024
_DRAIN_AFTER_KILL = 2.0
"""Seconds to keep reading after a kill: the pipes close as soon as the sandbox's processes are gone."""


@dataclass
class Completed:
    stdout: CappedBuffer
    stderr: CappedBuffer
    returncode: int
    timed_out: bool
    duration: float


async def _pump(stream: asyncio.StreamReader, buffer: CappedBuffer) -> None:
    while chunk := await stream.read(_READ_CHUNK):
        buffer.feed(chunk)


async def run_process(
    argv: Sequence[str],
    *,
    timeout: float,
    output: OutputLimit,
    env: Mapping[str, str],
    stdin: bytes | None = None,
    cwd: str | None = None,
    pass_fds: Sequence[int] = (),
) -> Completed:
    """Start `argv` in a new session (a new process group, no controlling terminal), feed it `stdin`, and
    collect its output until exit or `timeout`.

    On timeout the group is sent SIGKILL and whatever output had arrived is kept.
    """
    started = time.monotonic()
    process = await asyncio.create_subprocess_exec(
        *argv,
        stdin=asyncio.subprocess.PIPE if stdin is not None else asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        env=dict(env),
        cwd=cwd,
        start_new_session=True,
        pass_fds=tuple(pass_fds),
    )
    assert process.stdout is not None
    assert process.stderr is not None
    stdout, stderr = CappedBuffer(output), CappedBuffer(output)
    pumps = asyncio.gather(_pump(process.stdout, stdout), _pump(process.stderr, stderr), _feed(process, stdin))
    timed_out = False
    try:
        try:
            await asyncio.wait_for(process.wait(), timeout)
        except TimeoutError:
            timed_out = True
            _kill_group(process.pid)
            await process.wait()
        try:
            await asyncio.wait_for(asyncio.shield(pumps), _DRAIN_AFTER_KILL)
        except TimeoutError:
            _kill_group(process.pid)
    except BaseException:
        _kill_group(process.pid)
        await asyncio.shield(process.wait())
        raise
    finally:
        if not pumps.done():
            pumps.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await pumps
    assert process.returncode is not None
    return Completed(stdout, stderr, process.returncode, timed_out, time.monotonic() - started)


async def _feed(process: asyncio.subprocess.Process, data: bytes | None) -> None:
    if data is None or process.stdin is None:
        return
    with contextlib.suppress(BrokenPipeError, ConnectionResetError):
        process.stdin.write(data)
        await process.stdin.drain()
    process.stdin.close()


def _kill_group(pid: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pid, signal.SIGKILL)
