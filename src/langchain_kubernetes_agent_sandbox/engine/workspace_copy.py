"""Copy one sandbox's workspace into another through their agents: a tar stream packed in the source, carried
frame by frame, and unpacked from stdin in the target, so that neither end nor the server holds it whole.

Memory stays bounded on the server: at most `WINDOW` bytes of the stream are asked of the source's agent at a
time, and they go on to the target's stdin, whose agent refuses more than its buffer until the unpacker reads
(`stdin_full`), which holds the next window back. The source's agent spools what the packer writes, as it does
for every process, so the source needs room in its `/tmp` for the packed workspace while it is copied; that
spool is deleted when the copy ends.

A workspace being written to while it is packed is copied file by file as each was when the packer read it:
files replaced whole (as the file tools write them) arrive old or new, a file being appended to may arrive cut.
"""

from __future__ import annotations

import asyncio
import contextlib
import time

from ..errors import InvalidArgumentError, SandboxError, TimedOutError, TooLargeError
from ..paths import WORKDIR
from ..sandbox import Sandbox
from . import budget, processes, shell_jobs, wire
from .channel import AgentChannel, AgentLost, AgentRefused, check

PACK = "exec tar -cf - --sparse --numeric-owner -C /app ."
UNPACK = "exec tar -xpf - --numeric-owner -C /app"
PACK_CHANGED = 1
"""GNU tar's exit status when a file changed while it was read: the copy of that file is as it was read."""
WINDOW = 4 * 1024 * 1024
"""Bytes of the packed stream asked of the source's agent at once: the most the server holds of it."""
COPY_TIMEOUT = 600.0
"""Seconds a whole copy may take (a GiB at well under 10 MB/s) before both ends are stopped."""
STDIN_RETRY = 0.02
"""Seconds to wait before offering input again to an unpacker whose agent buffer is full."""
MAX_ERROR_BYTES = 4096
"""Bytes of the packer's complaints kept for the error a failed copy raises."""


async def copy_workspace(source: Sandbox, target: Sandbox, *, max_bytes: int) -> None:
    """Copy `source`'s /app into `target`'s /app.

    `TooLargeError` when the packed workspace exceeds `max_bytes`, `TimedOutError` past `COPY_TIMEOUT`; a failed
    copy stops both processes and leaves the target to its caller (who terminates it)."""
    if await source.agent() is None or await target.agent() is None:
        raise InvalidArgumentError(
            "This sandbox's runtime runs one-shot commands only, so its workspace cannot be streamed into a fork: "
            "fork needs a runtime whose sandboxes keep an agent running."
        )
    deadline = time.monotonic() + COPY_TIMEOUT
    unpacker = await processes.start(
        processes.agent_of(target),
        UNPACK,
        timeout=COPY_TIMEOUT,
        cwd=WORKDIR,
        env={},
        limit=target.limits.output,
        stdin=True,
    )
    try:
        packer = await processes.start(
            processes.agent_of(source), PACK, timeout=COPY_TIMEOUT, cwd=WORKDIR, env={}, limit=source.limits.output
        )
        try:
            await _carry(packer, unpacker, max_bytes=max_bytes, deadline=deadline)
            channel = await unpacker.channel_of()
            await channel.request({"op": "eof", "p": unpacker.id}, timeout=budget.AGENT_REQUEST)
        except _UnpackerEnded:
            pass  # tar stops at the archive's end marker, before the padding after it: its exit decides
        except AgentRefused as error:
            if error.reason != "not_running":
                raise
        finally:
            await _discard(source, packer)
        report = await unpacker.wait(max(deadline - time.monotonic(), budget.END_OF_RUN))
        if report is None:
            raise TimedOutError(f"Unpacking the copied workspace took over {COPY_TIMEOUT:g} s.")
        if report.result.exit_code != 0:
            raise SandboxError(
                f"The fork could not unpack the copied workspace (tar exit {report.result.exit_code}): "
                f"{report.result.stderr.strip()[:500] or 'no message'}"
            )
    except BaseException:
        with contextlib.suppress(Exception):
            await unpacker.cancel()
        raise


async def _carry(packer: processes.Process, unpacker: processes.Process, *, max_bytes: int, deadline: float) -> None:
    """Move the packer's stdout into the unpacker's stdin, one window at a time, until the packer ended and all
    it wrote has moved."""
    cursor = [0, 0]
    complaints = bytearray()
    ended = None
    while ended is None:
        channel = await packer.channel_of()
        ended = await _window(channel, packer.id, unpacker, cursor, complaints, max_bytes, deadline)
    state, code = check(ended, "state", str), check(ended, "code", int)
    if state == "timed_out":
        raise TimedOutError(f"Packing the workspace took over {COPY_TIMEOUT:g} s.")
    if state != "exited" or code not in (0, PACK_CHANGED):
        text = complaints.decode("utf-8", "replace").strip()[:500]
        raise SandboxError(f"The workspace could not be packed for the fork (tar exit {code}): {text or state}")


async def _window(
    channel: AgentChannel,
    process_id: str,
    unpacker: processes.Process,
    cursor: list[int],
    complaints: bytearray,
    max_bytes: int,
    deadline: float,
) -> wire.Header | None:
    """One attachment to the packer: up to `WINDOW` bytes of its stdout carried on; its exit header once it ended
    and nothing it wrote is left, else None (attach again from `cursor`)."""
    attachment, queue = channel.subscribe(max_bytes=2 * WINDOW)
    ended: wire.Header | None = None
    carried = 0
    try:
        attach = {"op": "attach", "p": process_id, "a": attachment, "o": list(cursor), "w": WINDOW}
        await channel.request(attach, timeout=budget.AGENT_REQUEST)
        while ended is None and carried < WINDOW:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise TimedOutError(f"Copying the workspace took over {COPY_TIMEOUT:g} s.")
            try:
                async with asyncio.timeout(remaining):
                    header, payload = await queue.get()
            except TimeoutError:
                continue
            op = header["op"]
            if op == "out":
                stream, offset = check(header, "s", int), check(header, "o", int)
                if stream not in (0, 1) or offset != cursor[stream]:
                    raise channel.reject(f"output of {process_id} out of order")
                cursor[stream] += len(payload)
                if stream == 1:
                    complaints += payload[: max(0, MAX_ERROR_BYTES - len(complaints))]
                    continue
                _check_size(cursor[0], max_bytes)
                carried += len(payload)
                await _feed(unpacker, payload, deadline)
            elif op in ("tick", "exit"):
                written = _stdout_size(channel, header, cursor[0])
                _check_size(written, max_bytes)
                if op == "exit" and written == cursor[0]:
                    ended = header
                elif op == "exit":
                    break  # the window ran out before the rest: attach again for it
            elif op == "lost":
                raise AgentLost(str(header.get("message")))
    finally:
        channel.unsubscribe(attachment)
        if ended is None and not channel.closed:
            with contextlib.suppress(AgentLost):
                await channel.send({"op": "detach", "a": attachment})
    return ended


def _stdout_size(channel: AgentChannel, header: wire.Header, carried: int) -> int:
    """How much the packer has written, as a tick or exit says: never less than what already arrived."""
    sizes = check(header, "n", list)
    if not sizes or not isinstance(sizes[0], int) or isinstance(sizes[0], bool) or sizes[0] < carried:
        raise channel.reject(f"the packer's sizes {sizes!r} contradict the {carried} bytes it sent")
    return sizes[0]


def too_large(max_bytes: int) -> TooLargeError:
    """The error for a workspace larger than a fork may copy, whichever provider copies it."""
    return TooLargeError(
        f"The workspace (/app) is larger than the {max_bytes / (1024 * 1024):g} MiB a fork may copy (the "
        "server's max_fork_mib): delete files it no longer needs (`du -sh /app/*` shows where the space "
        "went), or ask the operator for a larger limit. Nothing was created."
    )


def _check_size(size: int, max_bytes: int) -> None:
    if size > max_bytes:
        raise too_large(max_bytes)


async def _feed(unpacker: processes.Process, data: bytes, deadline: float) -> None:
    """Give `data` to the unpacker's stdin, waiting while its agent's buffer is full."""
    view = memoryview(data)
    for offset in range(0, len(view), wire.MAX_PAYLOAD_BYTES):
        piece = bytes(view[offset : offset + wire.MAX_PAYLOAD_BYTES])
        while True:
            channel = await unpacker.channel_of()
            try:
                await channel.request({"op": "stdin", "p": unpacker.id}, piece, timeout=budget.AGENT_REQUEST)
                break
            except AgentRefused as error:
                if error.reason != "stdin_full":
                    raise _UnpackerEnded(str(error)) from None
            if time.monotonic() > deadline:
                raise TimedOutError(f"Copying the workspace took over {COPY_TIMEOUT:g} s.")
            await asyncio.sleep(STDIN_RETRY)


class _UnpackerEnded(Exception):
    """The unpacker took no more input: it ended (at the archive's end, or failing)."""


async def _discard(source: Sandbox, packer: processes.Process) -> None:
    """Stop the packer if it still runs and delete its spool, the packed workspace, from the source's /tmp."""
    with contextlib.suppress(SandboxError):
        await packer.cancel()
    with contextlib.suppress(SandboxError):
        await source.run_script(f"rm -rf {shell_jobs.job_dir(packer.id)}", timeout=budget.PROBE)
