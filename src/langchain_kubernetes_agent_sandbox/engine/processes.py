"""Processes run by a sandbox's agent: start one, follow its output as it is written, give it input and
signals, wait for it, find it again by id (from another server process, or after a restart).

Following is bounded whatever the process writes: the agent streams at most the output cap of each stream
live, then only its sizes, and the tail is read from its spool once wanted, so memory holds one result.
"""

from __future__ import annotations

import asyncio
import logging
import math
import signal
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from ..errors import InvalidArgumentError, NotFoundError, QuotaExceededError, SandboxError
from ..output import OutputLimit, dropped_marker
from ..results import TIMEOUT_EXIT_CODE, CommandResult
from . import budget, shell_jobs, wire
from .channel import AgentChannel, AgentGone, AgentLost, AgentRefused, AgentSilent, check
from .results import JobResult

if TYPE_CHECKING:
    from ..sandbox import Sandbox

logger = logging.getLogger(__name__)

ChannelSource = Callable[[], Awaitable[AgentChannel]]
OutputCallback = Callable[[int, bytes], None]
"""Called with (stream, bytes) as output arrives: stream 0 is stdout, 1 is stderr."""
STATES = ("exited", "timed_out", "cancelled", "lost")
MAX_FIGURES = 8
MAX_RESUMES = 2
"""New connections one follow may go on over after the one it was on went silent."""
NO_BACKGROUND = (
    "This sandbox's runtime ends every process a request started when it returns, so no process can run on its "
    "own here: use run(), which waits for the command's end."
)
NO_INPUT = (
    "This sandbox's runtime runs one-shot commands only, so a process takes no input once started: pass the input "
    "with the command (a here-document, or a file written first)."
)


@dataclass(frozen=True)
class Exit:
    """How a process ended, as its agent reported it."""

    state: str
    """exited, timed_out, cancelled, or lost (its agent ended before it did)."""
    exit_code: int
    cell: dict[str, Any] | None = None
    """For a Python cell: what the kernel said (value, error, figures, kernel state)."""
    spool_error: str | None = None


@dataclass(frozen=True)
class Report:
    """A process's output since a cursor (bounded), and how it ended if it did."""

    process_id: str
    result: CommandResult
    cursor: tuple[int, int]
    """Byte offsets in stdout and stderr up to which output has been reported."""
    exit: Exit | None
    limit: float | None
    started_at: float | None
    figures: list[bytes] = field(default_factory=list)
    kind: str = "command"
    """command, or cell (of the Python kernel)."""

    @property
    def running(self) -> bool:
        return self.exit is None


class Process:
    """A handle on one process of a sandbox's agent; cheap, and made again from the id alone
    (`Sandbox.process`). Process ids are job ids: every job is a process."""

    def __init__(self, channel_of: ChannelSource, process_id: str, limit: OutputLimit) -> None:
        self.channel_of = channel_of
        self.id = process_id
        self.output_limit = limit

    async def follow(
        self,
        *,
        wait: float,
        cursor: tuple[int, int] = (0, 0),
        on_output: OutputCallback | None = None,
    ) -> Report:
        """The output written after `cursor`, waiting up to `wait` seconds for the process to end."""
        return await follow(
            self.channel_of, self.id, wait=wait, cursor=cursor, limit=self.output_limit, on_output=on_output
        )

    async def wait(self, timeout: float | None = None) -> Report | None:
        """The final report once the process ended, or None if it still runs after `timeout` seconds."""
        report = await self.follow(wait=math.inf if timeout is None else timeout)
        return None if report.running else report

    async def write_stdin(self, data: bytes) -> None:
        for offset in range(0, len(data), wire.MAX_PAYLOAD_BYTES):
            await self._ask("stdin", data[offset : offset + wire.MAX_PAYLOAD_BYTES])

    async def close_stdin(self) -> None:
        await self._ask("eof")

    async def signal(self, number: int) -> None:
        """Send signal `number` to the process's group (for a Python cell: to its kernel)."""
        await self._ask("signal", sig=int(number))

    async def cancel(self) -> None:
        """TERM to its group, KILL a moment later (a cell is interrupted, its kernel kept if it stops)."""
        await self._ask("cancel")

    async def _ask(self, op: str, payload: bytes = b"", **fields: Any) -> None:
        # Sent as requests so that refusals (a process that ended) come back as errors.
        try:
            channel = await self.channel_of()
            await channel.request({"op": op, "p": self.id, **fields}, payload, timeout=budget.AGENT_REQUEST)
        except AgentRefused as error:
            raise InvalidArgumentError(f"Process {self.id}: {error} (it may have ended: check its status).") from None


def agent_of(sandbox: Sandbox) -> ChannelSource:
    """Where a sandbox's processes are reached: its agent's channel at the time of asking (a new one once the old
    broke), so that a handle outlives the connection it was made on."""

    async def channel() -> AgentChannel:
        found = await sandbox.agent()
        if found is None:
            raise AgentLost(f"sandbox {sandbox.id} has no agent any more")
        return found

    return channel


async def _request_started(channel_of: ChannelSource, header: wire.Header) -> None:
    """Send a start request, once more on a new channel when the one at hand had broken before the request went
    out (its agent was killed since the last call). A request that reached the agent is never sent twice."""
    try:
        await _started(await channel_of(), header)
    except AgentGone:
        await _started(await channel_of(), header)


async def run(sandbox: Sandbox, command: str, *, timeout: float, cwd: str, env: Mapping[str, str]) -> CommandResult:
    """`Sandbox.run` through the sandbox's agent: start the command, wait for its end (the agent ends it at its
    limit), and give its bounded output."""
    try:
        limit = sandbox.limits.output
        process = await start(agent_of(sandbox), command, timeout=timeout, cwd=cwd, env=env, limit=limit)
        report = await process.follow(wait=timeout + budget.END_OF_RUN)
        if report.running:  # the agent did not end it at its limit
            await process.signal(signal.SIGKILL)
            report = await process.follow(wait=budget.END_OF_RUN)
    except AgentLost as error:
        raise _agent_ended(str(error)) from None
    if report.exit is not None and report.exit.state == "lost":  # found out by the agent started in its place
        raise _agent_ended("a new agent found the command lost")
    return report.result


def _agent_ended(reason: str) -> SandboxError:
    return SandboxError(
        f"The sandbox's agent ended while the command ran ({reason}): something in the sandbox killed it, and the "
        "command's output is lost. The next call starts a new agent."
    )


async def start(
    channel_of: ChannelSource,
    command: str,
    *,
    timeout: float,
    cwd: str,
    env: Mapping[str, str],
    limit: OutputLimit,
    stdin: bool = False,
    process_id: str | None = None,
) -> Process:
    """Start `command` under `/bin/sh -c` in its own process group, killed (exit 124) after `timeout` seconds."""
    process_id = process_id or shell_jobs.new_job_id()
    _check_size(command)
    header = {"op": "start", "p": process_id, "cmd": command, "cwd": cwd, "env": dict(env), "timeout": timeout}
    await _request_started(channel_of, {**header, "stdin": stdin})
    return Process(channel_of, process_id, limit)


async def start_cell(
    channel_of: ChannelSource,
    code: str,
    *,
    timeout: float,
    reset: bool,
    figure_budget: int,
    limit: OutputLimit,
    process_id: str | None = None,
) -> Process:
    """Queue a cell for the sandbox's Python kernel (started when none runs)."""
    process_id = process_id or shell_jobs.new_job_id()
    _check_size(code)
    header = {"op": "cell", "p": process_id, "code": code, "timeout": timeout, "reset": reset}
    await _request_started(channel_of, {**header, "budget": figure_budget})
    return Process(channel_of, process_id, limit)


def _check_size(text: str) -> None:
    if len(text.encode("utf-8", "surrogatepass")) > wire.MAX_HEADER_BYTES // 2:
        raise InvalidArgumentError(
            f"The program is over {wire.MAX_HEADER_BYTES // 2 // 1024} KiB: write it to a file in the sandbox "
            "(upload_file, or Sandbox.write_file), then run the file."
        )


async def _started(channel: AgentChannel, header: wire.Header) -> None:
    try:
        await channel.request(header, timeout=budget.AGENT_REQUEST)
    except AgentRefused as error:
        if error.reason == "no_space":
            raise NoSpoolSpace(
                "The sandbox's disk is full, so the output of a new run could not be kept: delete files you no longer "
                "need (`du -sh /app/* /tmp/*` shows where the space went) and try again."
            ) from None
        raise SandboxError(f"The sandbox could not start it: {error}") from None


class NoSpoolSpace(QuotaExceededError):
    """The agent could not make a run's folder: the sandbox's disk (or its quota) is full."""


async def follow(
    channel_of: ChannelSource,
    process_id: str,
    *,
    wait: float,
    cursor: tuple[int, int],
    limit: OutputLimit,
    on_output: OutputCallback | None = None,
) -> Report:
    """See `Process.follow`. A connection that goes silent meanwhile (a stalled relay) is not the process's end:
    the follow goes on from where it was on a new connection (`MAX_RESUMES` times at most)."""
    if any(offset < 0 for offset in cursor):
        raise InvalidArgumentError(f"The cursor {cursor} is negative: omit it to read from the start.")
    started = time.monotonic()
    # A look (wait 0) still waits for the agent to say it has sent what there was.
    deadline = started + (wait if wait > 0 else budget.AGENT_REQUEST)
    seen = _Seen(process_id, cursor, limit, look=wait <= 0, on_output=on_output)
    channel = await channel_of()
    resumes = 0
    while True:
        try:
            await _attached(channel, seen, deadline)
            break
        except AgentRefused as error:
            if error.reason == "not_found":
                raise NotFoundError(
                    f"No job {process_id} in this session: it never existed here, or the sandbox was reset."
                ) from None
            raise
        except ConnectionStalled as error:
            if resumes == MAX_RESUMES:
                raise
            resumes += 1
            logger.warning("following %s on %s: %s; going on over a new connection", process_id, channel.name, error)
            channel = await channel_of()
    texts = [await _bounded(channel, seen, stream) for stream in (0, 1)]
    return _report(
        process_id,
        texts,
        cursor,
        seen.sizes,
        {**seen.known, **(seen.ended or {})},
        seen.ended is not None,
        seen.figures,
        time.monotonic() - started,
    )


class _Seen:
    """What a follow has received so far, across the connections it went over."""

    def __init__(
        self,
        process_id: str,
        cursor: tuple[int, int],
        limit: OutputLimit,
        *,
        look: bool,
        on_output: OutputCallback | None,
    ) -> None:
        self.process_id = process_id
        self.cursor = cursor
        self.limit = limit
        self.look = look
        self.on_output = on_output
        self.live: list[bytearray] = [bytearray(), bytearray()]
        self.sizes = list(cursor)
        self.figures: list[bytes] = []
        self.ended: wire.Header | None = None
        self.known: wire.Header = {}

    def attach_request(self, attachment: str) -> wire.Header:
        """Streaming from where the live output stops, in a window that keeps it within the cap."""
        offsets = [self.cursor[stream] + len(self.live[stream]) for stream in (0, 1)]
        window = self.limit.max_bytes - max(len(self.live[0]), len(self.live[1]))
        return {"op": "attach", "p": self.process_id, "a": attachment, "o": offsets, "w": window}

    def take(self, channel: AgentChannel, header: wire.Header, payload: bytes) -> bool:
        """Take one frame of the attachment; whether the follow is done (a look has seen it all)."""
        op = header["op"]
        if op == "out":
            stream, offset = check(header, "s", int), check(header, "o", int)
            if stream not in (0, 1) or offset != self.cursor[stream] + len(self.live[stream]):
                raise channel.reject(f"output of {self.process_id} out of order")
            if len(self.live[stream]) + len(payload) > self.limit.max_bytes:
                raise channel.reject(f"more output of {self.process_id} than was asked for")
            self.live[stream] += payload
            self.sizes[stream] = max(self.sizes[stream], offset + len(payload))
            if self.on_output is not None:
                self.on_output(stream, payload)
        elif op == "tick":
            self.sizes = _sizes(header, self.sizes)
            self.known = {**self.known, **{key: header[key] for key in ("limit", "started", "kind") if key in header}}
            return header.get("idle") is True and self.look  # a look at where it stands: what it wrote is all in
        elif op == "figure" and len(self.figures) < MAX_FIGURES:
            self.figures.append(payload)
        elif op == "exit":
            self.ended = header
            self.sizes = _sizes(header, self.sizes)
        elif op == "lost":
            raise AgentLost(str(header.get("message")))
        return self.ended is not None


async def _attached(channel: AgentChannel, seen: _Seen, deadline: float) -> None:
    """Follow over `channel` until the process ends, a look is done, or `deadline`. A channel quiet for
    `budget.AGENT_QUIET` seconds is asked whether it still carries anything, and abandoned if it does not."""
    seen.figures.clear()  # the agent sends them all with the exit
    # What a genuine agent sends at most: the live window of both streams and the inline figures.
    attachment, queue = channel.subscribe(max_bytes=2 * seen.limit.max_bytes + MAX_FIGURES * wire.MAX_PAYLOAD_BYTES)
    try:
        await channel.request(seen.attach_request(attachment), timeout=budget.AGENT_REQUEST)
        while (remaining := deadline - time.monotonic()) > 0:
            try:
                async with asyncio.timeout(min(remaining, budget.AGENT_QUIET)):
                    header, payload = await queue.get()
            except TimeoutError:
                if remaining > budget.AGENT_QUIET:
                    await _still_carrying(channel)
                continue
            if seen.take(channel, header, payload):
                return
    finally:
        channel.unsubscribe(attachment)
        if seen.ended is None and not channel.closed:
            await channel.send({"op": "detach", "a": attachment})


async def _still_carrying(channel: AgentChannel) -> None:
    """Whether a quiet channel still reaches its agent: a relay or proxy in between can stall without ending, and
    then nothing more of the process would ever arrive."""
    try:
        await channel.request({"op": "ping"}, timeout=budget.AGENT_REQUEST)
    except AgentSilent as error:
        channel.abandon(f"the connection to the agent of {channel.name} went silent ({error})")
        raise ConnectionStalled(str(error)) from None


class ConnectionStalled(AgentLost):
    """A followed process's connection went silent without ending: the agent may live on, and the follow goes on
    over a new connection. One that ended is not tried again within the call, so that a pod that died fails the
    call at once; the next call finds the agent, and its processes, if they live."""


def _sizes(header: wire.Header, known: list[int]) -> list[int]:
    sizes = check(header, "n", list)
    if len(sizes) != 2 or not all(isinstance(n, int) and not isinstance(n, bool) and n >= 0 for n in sizes):
        raise AgentLost("the agent sent malformed sizes")
    return [max(new, old) for new, old in zip(sizes, known, strict=True)]


async def _bounded(channel: AgentChannel, seen: _Seen, stream: int) -> tuple[str, int, int]:
    """The text of a stream from the cursor to the last size seen, head and tail kept within the cap; returns the
    text, the byte count and the bytes dropped. Whatever the live stream did not bring is read from the spool."""
    start, end, live, limit = seen.cursor[stream], seen.sizes[stream], seen.live[stream], seen.limit
    process_id = seen.process_id
    total = end - start
    if total <= limit.max_bytes:
        missing = total - len(live)
        data = bytes(live) + (
            await _read(channel, process_id, stream, start + len(live), missing) if missing > 0 else b""
        )
        return data.decode("utf-8", "replace"), total, 0
    head = bytes(live[: limit.head_bytes])
    if len(head) < limit.head_bytes:
        head += await _read(channel, process_id, stream, start + len(head), limit.head_bytes - len(head))
    tail = (
        await _read(channel, process_id, stream, end - limit.tail_bytes, limit.tail_bytes) if limit.tail_bytes else b""
    )
    dropped = total - len(head) - len(tail)
    text = head.decode("utf-8", "replace") + dropped_marker(dropped) + tail.decode("utf-8", "replace")
    return text, total, dropped


async def _read(channel: AgentChannel, process_id: str, stream: int, offset: int, length: int) -> bytes:
    data = bytearray()
    while len(data) < length:
        want = min(length - len(data), wire.MAX_PAYLOAD_BYTES)
        header, payload = await channel.request(
            {"op": "read", "p": process_id, "s": stream, "o": offset + len(data), "n": want},
            timeout=budget.AGENT_REQUEST,
        )
        if check(header, "o", int) != offset + len(data) or len(payload) > want:
            raise channel.reject(f"a read of {process_id} answered with other bytes than asked for")
        if not payload:
            break  # the spool is shorter than the sizes said (a full disk kept it from growing)
        data += payload
    return bytes(data)


def _report(
    process_id: str,
    texts: list[tuple[str, int, int]],
    cursor: tuple[int, int],
    sizes: list[int],
    about: wire.Header,
    has_ended: bool,
    figures: list[bytes],
    waited: float,
) -> Report:
    (stdout, out_bytes, out_dropped), (stderr, err_bytes, err_dropped) = texts
    exit_info = None
    duration = waited
    limit = float(check(about, "limit", (int, float), 0)) or None
    started_at = float(check(about, "started", (int, float), 0)) or None
    if has_ended:
        ended = about
        state = check(ended, "state", str)
        if state not in STATES:
            raise AgentLost(f"the agent reported an unknown state {state!r}")
        cell = check(ended, "cell", dict, None)
        spool_error = check(ended, "spool_error", str, None)
        exit_info = Exit(state, check(ended, "code", int), cell, spool_error)
        duration = float(check(ended, "duration", (int, float), waited))
        if spool_error:
            stderr += f"\n[part of the output was not kept: {spool_error[:200]}]\n"
    result = CommandResult(
        stdout=stdout,
        stderr=stderr,
        exit_code=-1
        if exit_info is None
        else TIMEOUT_EXIT_CODE
        if exit_info.state == "timed_out"
        else exit_info.exit_code,
        duration=duration,
        timed_out=exit_info is not None and exit_info.state == "timed_out",
        stdout_bytes=out_bytes,
        stderr_bytes=err_bytes,
        dropped_bytes=out_dropped + err_dropped,
    )
    kind = (
        "cell" if about.get("kind") == "cell" or (exit_info is not None and exit_info.cell is not None) else "command"
    )
    cursor_now = (max(sizes[0], cursor[0]), max(sizes[1], cursor[1]))
    return Report(process_id, result, cursor_now, exit_info, limit, started_at, figures, kind)


class ShellProcess:
    """The same handle where a sandbox has no agent (runtimes with nothing but one-shot commands): the process is
    a shell job (`shell_jobs`), followed by polling its files. It takes signals but no input once started."""

    POLL = 0.25
    """Seconds between looks at a running job's files while following it."""

    def __init__(self, sandbox: Sandbox, process_id: str) -> None:
        self.sandbox = sandbox
        self.id = process_id

    async def follow(
        self,
        *,
        wait: float,
        cursor: tuple[int, int] = (0, 0),
        on_output: OutputCallback | None = None,
    ) -> Report:
        deadline = time.monotonic() + wait
        first = f"{cursor[0]}:{cursor[1]}"
        while True:
            remaining = deadline - time.monotonic()
            step = 0.0 if remaining <= 0 else min(remaining, self.POLL if on_output else remaining)
            job = (
                await shell_jobs.wait(self.sandbox, self.id, step, first)
                if step
                else await shell_jobs.status(self.sandbox, self.id, first)
            )
            if on_output is not None and job.cursor != first:
                on_output(0, job.result.stdout.encode())
                on_output(1, job.result.stderr.encode())
                first = job.cursor
            if not job.running or deadline - time.monotonic() <= 0:
                break
        return _of_job(await shell_jobs.status(self.sandbox, self.id, f"{cursor[0]}:{cursor[1]}"), cursor)

    async def wait(self, timeout: float | None = None) -> Report | None:
        report = await self.follow(wait=math.inf if timeout is None else timeout)
        return None if report.running else report

    async def write_stdin(self, data: bytes) -> None:
        raise InvalidArgumentError(NO_INPUT)

    async def close_stdin(self) -> None:
        """A shell job's stdin is at end-of-file from its start."""

    async def signal(self, number: int) -> None:
        directory = shell_jobs.job_dir(self.id)
        await self.sandbox.run_script(
            f't=$(cat {directory}/tpid 2>/dev/null) && kill -s {int(number)} -- "-$t" 2>/dev/null', timeout=budget.PROBE
        )

    async def cancel(self) -> None:
        await shell_jobs.cancel(self.sandbox, self.id)


def _of_job(job: JobResult, cursor: tuple[int, int]) -> Report:
    end = tuple(int(part) for part in job.cursor.split(":"))
    exit_info = None if job.running else Exit(job.state, job.result.exit_code)
    return Report(job.job_id, job.result, (end[0], end[1]), exit_info, job.limit, job.started_at)


SandboxProcess = Process | ShellProcess
