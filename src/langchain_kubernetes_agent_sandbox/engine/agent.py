"""The agent that runs INSIDE a sandbox (standard library only; copied there with `wire.py` and `pykernel.py`).

`python3 agent.py serve DIR` is the sandbox's one agent: it lives as long as the sandbox, listens on the Unix
socket `DIR/sock`, and runs commands and Python cells for whoever connects (any server process, any replica).
`python3 agent.py connect DIR` is what a server starts to reach it: it starts the agent if none answers, connects,
hands the connected socket to the server over its stdin (a Unix socket, SCM_RIGHTS) and exits, so the server talks
to the agent directly and no process stays in between; `python3 agent.py pipe DIR` relays such a connection over
its own stdin and stdout instead, for a server that has only a process's pipes (sandboxd's process API).
Where the server is outside the sandbox's machine (a pod),
`python3 agent.py listen DIR PORT` starts an agent serving TCP port PORT instead (see `agent_port.py`) if none
does, and prints its record (port, token, pid) as JSON.

Each process (a command, or a cell of the Python kernel) has an id and a folder `JOBS/<id>/` holding its whole
stdout and stderr and, once it ended, `exit.json`: output is spooled there as it is read from the pipes and
streamed from there to every connection attached to the process, so a server that restarted attaches again from
any offset and a job's output survives the connection that started it. Frames (see `wire.py`):

    server -> agent                                  agent -> server
    hello {v}                                        hello {v, pid, program}
    start {r, p, cmd, cwd, env, timeout, stdin}      started {r, p, pid} | error {r, code, message}
    cell {r, p, code, timeout, reset, budget}        started {r, p, pid, kernel, note}
    attach {r, p, a, o: [out, err], w}               attached {r}; then, each with its attachment's `a`:
                                                     out {p, a, s, o} + bytes; tick {p, a, n}; figure {p, a, i} +
                                                     png; exit {p, a, state, code, n, limit, started, duration, cell?}
    detach {a}; stdin {r, p} + bytes; eof {r, p}     ok {r}
    signal {r, p, sig}; cancel {r, p}                ok {r}
    read {r, p, s, o, n}                             data {r, p, s, o} + bytes
    kernel {r}                                       kernel {r, alive}
    ping {r}                                         pong {r}

`w` is how many bytes of each stream an attachment streams live; past it only `tick`s (sizes) follow, and the
server reads what it still wants (the tail) with `read`. Everything here is as trustworthy as the sandboxed code,
which can kill or replace this program: the server bounds and checks every frame it gets.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import fcntl
import hashlib
import json
import math
import os
import secrets
import select
import shutil
import signal
import socket
import subprocess
import sys
import time
from typing import Any

import agent_port  # type: ignore[import-not-found,unused-ignore]  # beside this file in the sandbox
import wire  # type: ignore[import-not-found,unused-ignore]

JOBS = "/tmp/.kas/jobs"
CHUNK = 256 * 1024
TICK = 0.2
"""Seconds between size updates for an attachment whose live window is used up."""
KILL_GRACE = 2.0
"""Seconds between the TERM of a cancel and the KILL that follows."""
CELL_GRACE = 3.0
"""Seconds a cell may run past its limit (its own interrupt comes first) before the kernel is killed."""
DRAIN_AFTER_EXIT = 1.0
"""Seconds to wait for a process's pipes to close after it exited: a daemon it forked may hold them open."""
MAX_STDIN_BUFFER = 8 * 1024 * 1024
"""Bytes of input the agent holds for a process that does not read it; more is refused until it does."""
PRUNE_AFTER = 24 * 3600.0
"""Seconds after a process ended before its folder (whose output may be large) is deleted."""
PRUNE_EVERY = 600.0
_ID_CHARS = set("abcdefghijklmnopqrstuvwxyz0123456789-")
MAX_FIGURES_SENT = 8


class Refused(Exception):
    """A request this agent cannot do; the reply names why with `code`."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code


_TASKS: set[asyncio.Future[Any]] = set()


def spawn(work: Any) -> asyncio.Future[Any]:
    """Run `work` in the background, holding a reference so the loop cannot drop it half-way."""
    task: asyncio.Future[Any] = asyncio.ensure_future(work)
    _TASKS.add(task)
    task.add_done_callback(_TASKS.discard)
    return task


class _Watched(asyncio.subprocess.SubprocessStreamProtocol):
    """Knows when its process exits, which `Process.wait()` does not say while a daemon the process forked still
    holds its pipes open."""

    def __init__(self) -> None:
        super().__init__(limit=4 * CHUNK, loop=asyncio.get_running_loop())
        self.exited: asyncio.Future[None] = asyncio.get_running_loop().create_future()

    def process_exited(self) -> None:
        super().process_exited()
        if not self.exited.done():
            self.exited.set_result(None)


async def start_process(*argv: str, **options: Any) -> tuple[asyncio.subprocess.Process, asyncio.Future[None]]:
    """`asyncio.create_subprocess_exec`, plus a future set the moment the process exits."""
    loop = asyncio.get_running_loop()
    transport, protocol = await loop.subprocess_exec(_Watched, *argv, **options)
    return asyncio.subprocess.Process(transport, protocol, loop), protocol.exited


async def exit_status(process: asyncio.subprocess.Process, exited: asyncio.Future[None]) -> int:
    await exited
    code = process.returncode
    return code if code is not None else -1


def read_program(directory: str) -> dict[str, bytes]:
    """The program's files as this agent starts: their digest is what the server checks, and the kernel is started
    from this copy, so a file replaced later in the sandbox never becomes the kernel."""
    program = {}
    for name in wire.PROGRAM_FILES:
        with open(os.path.join(directory, name), "rb") as file:
            program[name] = file.read()
    return program


def program_digest(program: dict[str, bytes]) -> str:
    """What the server compares to know this agent runs the program it shipped."""
    return hashlib.sha256(b"".join(program[name] for name in wire.PROGRAM_FILES)).hexdigest()


def _write_json(path: str, value: dict[str, Any], mode: int = 0o666) -> None:
    with contextlib.suppress(OSError):
        with open(os.open(f"{path}.part", os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode), "w", encoding="utf-8") as file:
            json.dump(value, file)
        os.replace(f"{path}.part", path)


def _read_json(path: str) -> dict[str, Any] | None:
    try:
        with open(path, encoding="utf-8") as file:
            value = json.load(file)
    except (OSError, ValueError):
        return None
    return value if isinstance(value, dict) else None


def load_figures(folder: str, figures: Any) -> list[bytes]:
    """The PNG bytes of a cell's figures that fit inline, read only from inside the cell's own folder."""
    loaded: list[bytes] = []
    for entry in figures if isinstance(figures, list) else []:
        inline = entry.get("inline") if isinstance(entry, dict) else None
        if len(loaded) >= MAX_FIGURES_SENT or not isinstance(inline, str):
            continue
        if os.path.dirname(inline) == folder:
            with contextlib.suppress(OSError), open(inline, "rb") as file:
                loaded.append(file.read(wire.MAX_PAYLOAD_BYTES))
    return loaded


def _check_attachment(attachment: Any) -> str:
    if not isinstance(attachment, str) or not 1 <= len(attachment) <= 40:
        raise wire.FrameError(f"bad attachment {attachment!r}")
    return attachment


def _check_id(process_id: Any) -> str:
    if not isinstance(process_id, str) or not 3 <= len(process_id) <= 40 or not set(process_id) <= _ID_CHARS:
        raise wire.FrameError(f"bad process id {process_id!r}")
    return process_id


class Spooled:
    """One process's output: appended to its files as it arrives, waited on by attachments."""

    def __init__(self, process_id: str, limit: float, kind: str) -> None:
        self.id = process_id
        self.folder = f"{JOBS}/{process_id}"
        os.makedirs(self.folder, exist_ok=True)
        self.files = [
            os.open(f"{self.folder}/{name}", os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
            for name in ("stdout", "stderr")
        ]
        self.sizes = [0, 0]
        self.spool_error: str | None = None
        self.on_file_limit: Any = None
        """Called once when the output reaches the sandbox's file size limit."""
        self.limit = limit
        self.kind = kind
        self.started = time.time()
        self.begun = time.monotonic()
        self.ended: dict[str, Any] | None = None
        self.figures: list[bytes] = []
        self.changed = asyncio.Event()
        _write_json(f"{self.folder}/process.json", {"limit": limit, "started": self.started, "kind": kind})

    @classmethod
    def reopened(cls, process_id: str) -> Spooled | None:
        """What the folder of a process this agent does not run says: how it ended, or that it was lost with the
        agent that ran it (its processes end with the agent, whose pipes they write to)."""
        folder = f"{JOBS}/{process_id}"
        started = _read_json(f"{folder}/process.json")
        if started is None:
            return None
        spool = cls.__new__(cls)
        spool.id, spool.folder, spool.files, spool.spool_error = process_id, folder, [], None
        spool.on_file_limit = None
        spool.sizes = []
        for name in ("stdout", "stderr"):
            try:
                spool.sizes.append(os.stat(f"{folder}/{name}").st_size)
            except OSError:
                spool.sizes.append(0)
        spool.limit, spool.started, spool.begun = started.get("limit", 0), started.get("started", 0), time.monotonic()
        spool.kind = started.get("kind", "command")
        spool.changed = asyncio.Event()
        lost = {"state": "lost", "code": -1, "limit": spool.limit, "started": spool.started, "duration": 0}
        spool.ended = {**(_read_json(f"{folder}/exit.json") or lost), "n": spool.sizes}
        cell = spool.ended.get("cell")
        spool.figures = load_figures(folder, cell.get("figures", [])) if isinstance(cell, dict) else []
        return spool

    def append(self, stream: int, data: bytes) -> None:
        """Spool `data`; after the process ended (a daemon it forked still writing) it only goes to the file."""
        if not data or not self.files:
            return
        try:
            os.write(self.files[stream], data)
        except OSError as error:  # a full disk or the file size limit: what was not written is not counted
            if self.spool_error is None:
                self.spool_error = f"{error.strerror}"
                if error.errno == errno.EFBIG and self.on_file_limit is not None:
                    self.on_file_limit()
            return
        if self.ended is None:
            self.sizes[stream] += len(data)
            self._wake()

    def close(self) -> None:
        for fd in self.files:
            with contextlib.suppress(OSError):
                os.close(fd)
        self.files = []

    def finish(self, state: str, code: int, cell: dict[str, Any] | None = None) -> None:
        if self.ended is not None:
            return
        self.ended = {
            "state": state,
            "code": code,
            "n": list(self.sizes),
            "limit": self.limit,
            "started": self.started,
            "duration": round(time.monotonic() - self.begun, 6),
        }
        if cell is not None:
            self.ended["cell"] = cell
        if self.spool_error:
            self.ended["spool_error"] = self.spool_error
        _write_json(f"{self.folder}/exit.json", self.ended)
        self._wake()

    def _wake(self) -> None:
        self.changed.set()
        self.changed = asyncio.Event()


class Command:
    """A shell command in a process group of its own, with a wall-clock limit."""

    def __init__(self, spool: Spooled, process: asyncio.subprocess.Process, exited: asyncio.Future[None]) -> None:
        self.spool = spool
        self.process = process
        self.exited = exited
        self.state = "exited"
        self.killer: asyncio.TimerHandle | None = None
        spool.on_file_limit = self._output_too_large

    def _output_too_large(self) -> None:
        """Endless output ends where a file written inside the sandbox would: SIGXFSZ, then SIGKILL."""
        self.spool.spool_error = "File size limit exceeded: the command was stopped when its output reached it"
        self.signal(signal.SIGXFSZ)
        asyncio.get_running_loop().call_later(KILL_GRACE, self.signal, signal.SIGKILL)

    async def supervise(self, timeout: float) -> None:
        loop = asyncio.get_running_loop()
        self.killer = loop.call_later(timeout, self._time_up)
        pumps = [
            spawn(self._pump(stream, index)) for index, stream in enumerate((self.process.stdout, self.process.stderr))
        ]
        code = await exit_status(self.process, self.exited)
        self.killer.cancel()
        await asyncio.wait(pumps, timeout=DRAIN_AFTER_EXIT)  # not cancelled when it passes: see below
        if self.state == "timed_out":
            code = 124
        elif code < 0:
            code = 128 - code
        self.spool.finish(self.state, code)
        # A daemon the command forked may keep its pipes open: its output keeps going to the files until then.
        await asyncio.gather(*pumps, return_exceptions=True)
        self.spool.close()

    async def _pump(self, stream: asyncio.StreamReader | None, index: int) -> None:
        assert stream is not None
        while chunk := await stream.read(CHUNK):
            self.spool.append(index, chunk)

    def _time_up(self) -> None:
        self.state = "timed_out"
        self.signal(signal.SIGKILL)

    def signal(self, number: int) -> None:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self.process.pid, number)

    def cancel(self) -> None:
        if self.spool.ended is not None:
            return
        self.state = "cancelled"
        self.signal(signal.SIGTERM)
        asyncio.get_running_loop().call_later(KILL_GRACE, self.signal, signal.SIGKILL)


class Kernel:
    """The sandbox's Python kernel: one child process running `pykernel.py` (from the agent's own copy, `source`),
    one cell at a time."""

    def __init__(self, source: str) -> None:
        self.source = source
        self.process: asyncio.subprocess.Process | None = None
        self.exited: asyncio.Future[None] | None = None
        self.replies: asyncio.StreamReader | None = None
        self.requests: int | None = None
        self.lock = asyncio.Lock()
        self.current: Cell | None = None
        self.last_exit: int | None = None

    @property
    def alive(self) -> bool:
        return self.process is not None and self.process.returncode is None

    async def ensure(self, reset: bool) -> tuple[str, str | None]:
        """Start a kernel when none runs; returns how (started, kept, restarted, reset) and a note."""
        if reset and self.alive:
            self.kill()
            assert self.exited is not None
            await self.exited
            await self._start()
            return "reset", None
        if self.alive:
            return "kept", None
        had = self.process is not None
        await self._start()
        if had:
            return "restarted", f"the previous kernel ended with status {self.last_exit}"
        return "started", None

    async def _start(self) -> None:
        request_read, request_write = os.pipe()
        reply_read, reply_write = os.pipe()
        env = {**os.environ, "MPLBACKEND": "Agg", "PYTHONDONTWRITEBYTECODE": "1"}
        self.process, self.exited = await start_process(
            sys.executable,
            "-u",
            "-c",
            self.source,
            "agent",
            str(request_read),
            str(reply_write),
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            pass_fds=(request_read, reply_write),
            cwd="/app" if os.path.isdir("/app") else "/",
            env=env,
            start_new_session=True,
        )
        os.close(request_read)
        os.close(reply_write)
        self.requests = request_write
        loop = asyncio.get_running_loop()
        replies = asyncio.StreamReader(limit=4 * 1024 * 1024)
        await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(replies), os.fdopen(reply_read, "rb"))
        self.replies = replies
        for index, stream in enumerate((self.process.stdout, self.process.stderr)):
            spawn(self._pump(self.process, stream, index))
        spawn(self._watch(self.process, self.exited))

    async def _pump(self, process: asyncio.subprocess.Process, stream: Any, index: int) -> None:
        """Route the kernel's output to the cell running now; what comes between cells (a thread a cell left
        printing) belongs to none and is dropped."""
        held = b""
        while chunk := await stream.read(CHUNK):
            cell = self.current if self.process is process else None
            if cell is None or cell.closed[index]:
                held = b""
                continue
            held = cell.take(index, held + chunk)

    async def _watch(self, process: asyncio.subprocess.Process, exited: asyncio.Future[None]) -> None:
        code = await exit_status(process, exited)
        self.last_exit = code
        if self.requests is not None and self.process is process:
            with contextlib.suppress(OSError):
                os.close(self.requests)
            self.requests = None
        cell = self.current
        if cell is not None and self.process is process:
            cell.died(code)

    def kill(self) -> None:
        if self.process is not None and self.process.returncode is None:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(self.process.pid, signal.SIGKILL)

    async def run(self, cell: Cell, code: str, timeout: float, budget: int) -> None:
        """Run `cell` to its end; the caller holds `lock`."""
        self.current = cell
        request = {"code": code, "timeout": timeout, "folder": cell.spool.folder, "nonce": cell.nonce, "budget": budget}
        hard_limit = asyncio.get_running_loop().call_later(timeout + CELL_GRACE + 1, self._give_up, cell)
        try:
            if self.requests is None or self.replies is None:
                raise OSError("no kernel")
            os.write(self.requests, (json.dumps(request) + "\n").encode())
            line = await self.replies.readline()
            if line:
                cell.replied(line)
        except (OSError, ValueError):
            cell.died(self.last_exit if self.last_exit is not None else -1)
        try:
            await cell.done.wait()
        finally:
            hard_limit.cancel()
            self.current = None

    def _give_up(self, cell: Cell) -> None:
        """The cell did not stop when interrupted (or is past its hard limit): end the kernel, if it is still on it."""
        if self.current is cell and not cell.done.is_set():
            cell.lost = True
            self.kill()


class Cell:
    """One cell's run in the kernel: its output goes to its spool until the kernel's end markers arrive."""

    def __init__(self, spool: Spooled) -> None:
        self.spool = spool
        self.nonce = secrets.token_hex(8)
        self.marker = f"\x00kas-end-{self.nonce}\x00".encode()
        self.closed = [False, False]
        self.reply: dict[str, Any] | None = None
        self.info: dict[str, Any] = {"kernel": "unknown", "note": None}
        self.done = asyncio.Event()
        self.lost = False
        self.cancelled = False

    def take(self, stream: int, data: bytes) -> bytes:
        """Spool `data` read from the kernel's `stream` up to this cell's marker; returns the bytes held back
        because they may be the start of a marker split across reads."""
        at = data.find(self.marker)
        if at >= 0:
            self.spool.append(stream, data[:at])
            self.closed[stream] = True
            self._maybe_done()
            return b""
        keep = 0
        start = data.rfind(b"\x00", max(0, len(data) - len(self.marker) + 1))
        if start >= 0 and self.marker.startswith(data[start:]):
            keep = len(data) - start
        self.spool.append(stream, data[: len(data) - keep])
        return data[len(data) - keep :]

    def replied(self, line: bytes | str) -> None:
        try:
            reply = json.loads(line)
        except ValueError:
            reply = None
        self.reply = reply if isinstance(reply, dict) else {"status": 1, "error": "the kernel's reply was garbled"}
        marked = self.reply.get("marked")
        if isinstance(marked, list) and len(marked) == 2:
            # A stream the cell closed carries no marker: nothing more will come on it for this cell.
            self.closed = [closed or not ok for closed, ok in zip(self.closed, marked, strict=True)]
        self._maybe_done()

    def died(self, code: int) -> None:
        """The kernel ended during this cell: interrupted past its grace (`lost`), cancelled, or on its own."""
        with contextlib.suppress(OSError), open(f"{self.spool.folder}/interrupted", "rb") as file:
            self.lost = self.lost or file.read(8).startswith(b"lost")  # the kernel gave up on the cell itself
        status = 128 - code if code < 0 else code
        if self.reply is None:
            if self.lost:
                message = "\n[the cell did not stop when interrupted: the Python kernel was ended]\n"
                self.reply = {"status": 130 if self.cancelled else 124, "lost": True}
            else:
                message = (
                    f"\n[the Python kernel died during this cell: exit status {status}; "
                    "a new one starts on the next call]\n"
                )
                self.reply = {"status": status, "crashed": True}
            self.spool.append(1, message.encode())
            self.reply["error"] = message.strip()
        self.closed = [True, True]
        self._maybe_done()

    def _maybe_done(self) -> None:
        if self.reply is None or not all(self.closed) or self.done.is_set():
            return
        reply = self.reply
        status = reply.get("status", 1)
        status = status if isinstance(status, int) else 1
        survived = None
        if reply.get("interrupted") or reply.get("lost"):
            survived = not reply.get("lost")
        state = "timed_out" if status == 124 else "cancelled" if self.cancelled else "exited"
        if reply.get("crashed"):
            state = "lost"
        listed = reply.get("figures")
        figures: list[Any] = listed if isinstance(listed, list) else []
        cell = {
            **self.info,
            "value": reply.get("value"),
            "error": reply.get("error"),
            "figures": figures,
            "figures_made": reply.get("figures_made", len(figures)),
            "state_survived": survived,
        }
        self.spool.figures = load_figures(self.spool.folder, figures)
        self.spool.finish(state, status, cell)
        self.done.set()


class Agent:
    def __init__(self, directory: str) -> None:
        self.directory = directory
        program = read_program(directory)
        self.digest = program_digest(program)
        self.commands: dict[str, Command] = {}
        self.spools: dict[str, Spooled] = {}
        self.kernel = Kernel(program["pykernel.py"].decode("utf-8"))
        self.cells: dict[str, Cell] = {}

    async def prune_forever(self) -> None:
        """Now and then, delete the folders of processes that ended (or were lost) over `PRUNE_AFTER` ago."""
        while True:
            now = time.time()
            with contextlib.suppress(OSError):
                for name in os.listdir(JOBS):
                    if name not in self.spools and now - self._ended_at(f"{JOBS}/{name}") > PRUNE_AFTER:
                        shutil.rmtree(f"{JOBS}/{name}", ignore_errors=True)
            await asyncio.sleep(PRUNE_EVERY)

    @staticmethod
    def _ended_at(folder: str) -> float:
        """When the process of `folder` ended: its exit record (of this agent, or of a shell job), or for one lost
        with an earlier agent, its start plus its limit; +inf when it may still run."""
        for marker in ("exit.json", "exit"):
            with contextlib.suppress(OSError):
                return os.stat(f"{folder}/{marker}").st_mtime
        started = _read_json(f"{folder}/process.json")
        if started is None:
            return math.inf
        limit = started.get("limit")
        with contextlib.suppress(OSError):
            return os.stat(f"{folder}/process.json").st_mtime + (limit if isinstance(limit, int | float) else 0)
        return math.inf

    async def serve(self, port: int | None) -> None:
        """Serve the Unix socket `DIR/sock`, or with `port` that TCP port (and not the socket: one listener each)."""
        spawn(self.prune_forever())
        if port is None:
            path = f"{self.directory}/sock"
            with contextlib.suppress(FileNotFoundError):
                os.unlink(path)
            server = await asyncio.start_unix_server(self.connection, path)
            os.chmod(path, 0o600)
        else:
            token = secrets.token_urlsafe(32)
            server = await asyncio.start_server(
                lambda r, w: self.websocket(r, w, token), port=port, limit=agent_port.MAX_HANDSHAKE_BYTES
            )
            _write_json(f"{self.directory}/port.json", {"port": port, "token": token, "pid": os.getpid()}, mode=0o600)
        async with server:
            await server.serve_forever()

    async def websocket(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, token: str) -> None:
        if await agent_port.accept(reader, writer, token):
            await self.connection(agent_port.MessageReader(reader, writer), agent_port.MessageWriter(writer))
        else:
            with contextlib.suppress(ConnectionError):
                await writer.drain()
            writer.close()

    async def connection(self, reader: Any, writer: Any) -> None:
        """Serve one server's connection: a Unix socket's streams, or a WebSocket's (see `agent_port`)."""
        link = Link(writer)
        try:
            while True:
                header, payload = await wire.read_frame(reader)
                await self.handle(link, header, payload)
        except (asyncio.IncompleteReadError, ConnectionError, wire.FrameError):
            pass
        finally:
            link.close()

    async def handle(self, link: Link, header: wire.Header, payload: bytes) -> None:
        op = header["op"]
        request = header.get("r")
        try:
            if op == "hello":
                link.send({"op": "hello", "r": request, "v": wire.VERSION, "pid": os.getpid(), "program": self.digest})
            elif op == "ping":
                link.send({"op": "pong", "r": request})
            elif op == "start":
                await self.start(link, header)
            elif op == "cell":
                await self.cell(link, header)
            elif op == "attach":
                link.attach(self, _check_id(header.get("p")), header)
                link.send({"op": "attached", "r": request, "p": header.get("p")})
            elif op == "detach":
                link.detach(_check_attachment(header.get("a")))
            elif op == "stdin":
                self._stdin(_check_id(header.get("p")), payload)
            elif op == "eof":
                self._stdin(_check_id(header.get("p")), None)
            elif op == "signal":
                self._signal(_check_id(header.get("p")), wire.field(header, "sig", int))
            elif op == "cancel":
                self._cancel(_check_id(header.get("p")))
            elif op == "read":
                self._read(link, header)
            elif op == "kernel":
                link.send({"op": "kernel", "r": request, "alive": self.kernel.alive})
            elif op == "shutdown":
                self.shutdown()
            else:
                raise wire.FrameError(f"unknown op {op!r}")
            if op in ("stdin", "eof", "signal", "cancel") and request is not None:
                link.send({"op": "ok", "r": request})
        except (Refused, OSError) as error:
            code = error.code if isinstance(error, Refused) else "os_error"
            if isinstance(error, OSError) and error.errno in (errno.ENOSPC, errno.EDQUOT):
                code = "no_space"
            link.send({"op": "error", "r": request, "p": header.get("p"), "code": code, "message": str(error)})
        await link.drain()

    def shutdown(self) -> None:
        """End every process of this agent, then the agent (a newer server replaces it)."""
        for command in self.commands.values():
            command.signal(signal.SIGKILL)
        self.kernel.kill()
        os._exit(0)

    def find(self, process_id: str) -> Spooled | None:
        """A process of this agent, or one an earlier agent spooled (ended, or lost with that agent)."""
        return self.spools.get(process_id) or Spooled.reopened(process_id)

    async def start(self, link: Link, header: wire.Header) -> None:
        process_id = self._new_id(header)
        command = wire.field(header, "cmd", str)
        env = wire.field(header, "env", dict, {})
        timeout = float(wire.field(header, "timeout", (int, float)))
        cwd = wire.field(header, "cwd", str, "/app")
        spool = Spooled(process_id, timeout, "command")
        try:
            process, exited = await start_process(
                "/bin/sh",
                "-c",
                command,
                stdin=subprocess.PIPE if header.get("stdin") else subprocess.DEVNULL,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                cwd=cwd,
                env={**os.environ, **{str(k): str(v) for k, v in env.items()}},
                start_new_session=True,
            )
        except (OSError, ValueError) as error:  # ValueError: an environment variable name no process can have
            reason = error.strerror if isinstance(error, OSError) and error.strerror else error
            spool.append(1, f"could not start the command: {reason}\n".encode())
            spool.finish("exited", 126 if not isinstance(error, FileNotFoundError) else 127)
            spool.close()
            self.spools[process_id] = spool
            link.send({"op": "started", "r": header.get("r"), "p": process_id, "pid": 0})
            return
        self.spools[process_id] = spool
        command_run = Command(spool, process, exited)
        self.commands[process_id] = command_run
        link.send({"op": "started", "r": header.get("r"), "p": process_id, "pid": process.pid})
        spawn(self._supervise(process_id, command_run, timeout))

    async def _supervise(self, process_id: str, command: Command, timeout: float) -> None:
        try:
            await command.supervise(timeout)
        finally:
            self.commands.pop(process_id, None)
            self._forget_ended()

    def _forget_ended(self) -> None:
        """Keep ended processes in memory only while few: their folders still answer for them."""
        ended = [key for key, spool in self.spools.items() if spool.ended is not None]
        for key in ended[: max(0, len(ended) - 64)]:
            del self.spools[key]

    async def cell(self, link: Link, header: wire.Header) -> None:
        process_id = self._new_id(header)
        code = wire.field(header, "code", str)
        timeout = float(wire.field(header, "timeout", (int, float)))
        budget = wire.field(header, "budget", int, 262144)
        spool = Spooled(process_id, timeout, "cell")
        self.spools[process_id] = spool
        cell = Cell(spool)
        self.cells[process_id] = cell
        link.send({"op": "started", "r": header.get("r"), "p": process_id, "pid": 0})
        spawn(self._run_cell(process_id, cell, code, timeout, budget, bool(header.get("reset"))))

    async def _run_cell(self, process_id: str, cell: Cell, code: str, timeout: float, budget: int, reset: bool) -> None:
        """Cells queue for the one kernel; each learns when its turn comes whether the kernel is new."""
        try:
            async with self.kernel.lock:
                try:
                    how, note = await self.kernel.ensure(reset)
                except OSError as error:
                    cell.info = {"kernel": "unknown", "note": None}
                    cell.closed = [True, True]
                    cell.replied(json.dumps({"status": 1, "error": f"the Python kernel did not start: {error}"}))
                    return
                cell.info = {"kernel": how, "note": note}
                await self.kernel.run(cell, code, timeout, budget)
        finally:
            cell.spool.close()
            self.cells.pop(process_id, None)
            self._forget_ended()

    def _new_id(self, header: wire.Header) -> str:
        process_id = _check_id(header.get("p"))
        if process_id in self.spools or os.path.exists(f"{JOBS}/{process_id}"):
            raise Refused("exists", f"a process {process_id} exists already: use a new id")
        return process_id

    def _stdin(self, process_id: str, data: bytes | None) -> None:
        command = self.commands.get(process_id)
        if command is None or command.process.stdin is None:
            raise Refused("not_running", f"process {process_id} is not running with stdin")
        if data is None:
            command.process.stdin.close()
        elif command.process.stdin.transport.get_write_buffer_size() > MAX_STDIN_BUFFER:
            raise Refused("stdin_full", f"process {process_id} is not reading its input: wait, or close its stdin")
        else:
            command.process.stdin.write(data)

    def _signal(self, process_id: str, number: int) -> None:
        if not 1 <= number <= 64:
            raise wire.FrameError(f"bad signal {number}")
        if process_id in self.cells and self.kernel.process is not None:
            os.kill(self.kernel.process.pid, number)
            return
        command = self.commands.get(process_id)
        if command is None:
            raise Refused("not_running", f"process {process_id} is not running")
        command.signal(number)

    def _cancel(self, process_id: str) -> None:
        cell = self.cells.get(process_id)
        if cell is not None and self.kernel.process is not None:
            cell.cancelled = True
            with contextlib.suppress(ProcessLookupError):
                os.kill(self.kernel.process.pid, signal.SIGINT)
            asyncio.get_running_loop().call_later(CELL_GRACE + 1, self.kernel._give_up, cell)
            return
        command = self.commands.get(process_id)
        if command is not None:
            command.cancel()

    def _read(self, link: Link, header: wire.Header) -> None:
        process_id = _check_id(header.get("p"))
        stream = wire.field(header, "s", int)
        offset = wire.field(header, "o", int)
        length = min(wire.field(header, "n", int), wire.MAX_PAYLOAD_BYTES)
        if stream not in (0, 1) or offset < 0 or length < 0:
            raise wire.FrameError("bad read")
        spool = self.find(process_id)
        if spool is None:
            raise Refused("not_found", f"no process {process_id}")
        with open(f"{spool.folder}/{('stdout', 'stderr')[stream]}", "rb") as file:
            file.seek(offset)
            data = file.read(length)
        link.send({"op": "data", "r": header.get("r"), "p": process_id, "s": stream, "o": offset}, data)


class Link:
    """One connection: frames out, and the attachments streaming processes' output to it."""

    def __init__(self, writer: Any) -> None:
        self.writer = writer
        self.streams: dict[str, asyncio.Future[Any]] = {}
        self.closed = False

    def send(self, header: wire.Header, payload: bytes = b"") -> None:
        if not self.closed:
            self.writer.write(wire.encode(header, payload))

    async def drain(self) -> None:
        with contextlib.suppress(ConnectionError):
            await self.writer.drain()

    def attach(self, agent: Agent, process_id: str, header: wire.Header) -> None:
        spool = agent.find(process_id)
        if spool is None:
            raise Refused("not_found", f"no process {process_id}")
        offsets = wire.field(header, "o", list, [0, 0])
        window = wire.field(header, "w", int, CHUNK)
        attachment = _check_attachment(header.get("a"))
        if len(offsets) != 2 or not all(isinstance(o, int) and not isinstance(o, bool) and o >= 0 for o in offsets):
            raise wire.FrameError("bad offsets")
        self.detach(attachment)
        self.streams[attachment] = spawn(self._stream(spool, attachment, list(offsets), max(0, window)))

    def detach(self, attachment: str) -> None:
        task = self.streams.pop(attachment, None)
        if task is not None:
            task.cancel()

    async def _stream(self, spool: Spooled, attachment: str, sent: list[int], window: int) -> None:
        """Stream one attachment: its frames say which (`a`), so one connection may follow a process twice."""
        budget = [window, window]
        reported = list(spool.sizes)
        about = {"limit": spool.limit, "started": spool.started, "kind": spool.kind}
        self.send({"op": "tick", "p": spool.id, "a": attachment, "n": reported, **about})
        idle = True
        try:
            while True:
                changed = spool.changed
                progressed = False
                for stream in (0, 1):
                    room = min(spool.sizes[stream] - sent[stream], budget[stream], CHUNK)
                    if room <= 0:
                        continue
                    with open(f"{spool.folder}/{('stdout', 'stderr')[stream]}", "rb") as file:
                        file.seek(sent[stream])
                        data = file.read(room)
                    if not data:
                        continue
                    self.send({"op": "out", "p": spool.id, "a": attachment, "s": stream, "o": sent[stream]}, data)
                    sent[stream] += len(data)
                    budget[stream] -= len(data)
                    progressed = True
                await self.drain()
                if progressed:
                    continue
                if spool.ended is not None:
                    for index, figure in enumerate(spool.figures):
                        self.send({"op": "figure", "p": spool.id, "a": attachment, "i": index}, figure)
                    self.send({"op": "exit", "p": spool.id, "a": attachment, **spool.ended})
                    await self.drain()
                    return
                if idle or spool.sizes != reported:
                    # Caught up with what there is (or with the live window): the sizes, flagged idle once.
                    reported = list(spool.sizes)
                    self.send({"op": "tick", "p": spool.id, "a": attachment, "n": reported, "idle": idle})
                    idle = False
                with contextlib.suppress(asyncio.TimeoutError):
                    await asyncio.wait_for(changed.wait(), TICK)
        except (OSError, ConnectionError):
            return
        finally:
            if self.streams.get(attachment) is asyncio.current_task():
                del self.streams[attachment]

    def close(self) -> None:
        self.closed = True
        for task in list(self.streams.values()):
            task.cancel()
        with contextlib.suppress(Exception):
            self.writer.close()


def connect(directory: str, replace: bool = False) -> int:
    """Hand a connection to the agent (started if none answers) to the server over fd 0, then exit. With
    `replace`, whatever listens on the agent's socket now (an agent the server could not accept) is left behind
    and a new agent started."""
    connection = _agent_connection(directory, replace)
    if connection is None:
        return _report_failure(directory)
    return _hand_over(connection)


def pipe(directory: str, replace: bool = False) -> int:
    """Relay a connection to the agent (started if none answers, as with `connect`) over this process's stdin and
    stdout until either side ends: for a server that reaches the sandbox only through a process's pipes (sandboxd's
    process API). The agent outlives this relay, so a server that lost it starts another and attaches again."""
    connection = _agent_connection(directory, replace)
    if connection is None:
        return _report_failure(directory)
    with connection:
        _relay_pipes(connection)
    return 0


def _agent_connection(directory: str, replace: bool) -> socket.socket | None:
    path = f"{directory}/sock"
    with _locked(directory):
        if replace:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(path)
        connection = _connect(socket.AF_UNIX, path)
        if connection is None:
            _start_agent(directory, [])
            connection = _wait_for(lambda: _connect(socket.AF_UNIX, path))
    return connection


def _relay_pipes(connection: socket.socket) -> None:
    reading_stdin, agent = True, connection.fileno()
    while True:
        readable, _, _ = select.select([agent, *([0] if reading_stdin else [])], [], [])
        if 0 in readable:
            data = os.read(0, CHUNK)
            if data:
                connection.sendall(data)
            else:
                reading_stdin = False
                connection.shutdown(socket.SHUT_WR)
        if agent in readable:
            data = connection.recv(CHUNK)
            if not data:
                return
            view = memoryview(data)
            while view:
                view = view[os.write(1, view) :]


def listen(directory: str, port: int, replace: bool = False) -> int:
    """Print the record of the agent serving `port` (started if none does). With `replace`, the agent recorded
    there (one the server could not accept) is killed first, since it holds the port."""
    with _locked(directory):
        record = _read_json(f"{directory}/port.json")
        if record is not None and replace:
            with contextlib.suppress(OSError, TypeError, ValueError):
                os.kill(int(record["pid"]), signal.SIGKILL)
            os.unlink(f"{directory}/port.json")
            record = None
        if record is None or not _serves(record, port):
            with contextlib.suppress(FileNotFoundError):
                os.unlink(f"{directory}/port.json")
            _start_agent(directory, [str(port)])
            record = _wait_for(lambda: _serving(directory, port))
    if record is None:
        return _report_failure(directory)
    sys.stdout.write(json.dumps(record) + "\n")
    return 0


@contextlib.contextmanager
def _locked(directory: str) -> Any:
    with open(f"{directory}/lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        yield


def _start_agent(directory: str, arguments: list[str]) -> None:
    log = open(f"{directory}/log", "ab")  # noqa: SIM115 - the agent keeps it
    subprocess.Popen(
        [sys.executable, "-u", "-E", "-s", "-S", f"{directory}/agent.py", "serve", directory, *arguments],
        stdin=subprocess.DEVNULL,
        stdout=log,
        stderr=log,
        start_new_session=True,
        cwd="/",
        close_fds=True,
    )


def _wait_for(found: Any) -> Any:
    deadline = time.monotonic() + 10
    value = found()
    while value is None and time.monotonic() < deadline:
        time.sleep(0.005)
        value = found()
    return value


def _serves(record: dict[str, Any], port: int) -> bool:
    if record.get("port") != port:
        return False
    connection = _connect(socket.AF_INET, ("127.0.0.1", port))
    if connection is None:
        return False
    connection.close()
    return True


def _serving(directory: str, port: int) -> dict[str, Any] | None:
    record = _read_json(f"{directory}/port.json")
    return record if record is not None and _serves(record, port) else None


def _report_failure(directory: str) -> int:
    sys.stderr.write("the agent did not start; its log:\n")
    with contextlib.suppress(OSError), open(f"{directory}/log", "rb") as file:
        file.seek(max(0, os.fstat(file.fileno()).st_size - 2000))
        sys.stderr.write(file.read().decode("utf-8", "replace"))
    return 1


def _hand_over(connection: socket.socket) -> int:
    server = socket.socket(fileno=0)
    try:
        socket.send_fds(server, [b"k"], [connection.fileno()])
        return 0
    finally:
        server.close()
        connection.close()


def _connect(family: int, address: Any) -> socket.socket | None:
    connection = socket.socket(family, socket.SOCK_STREAM)
    try:
        connection.connect(address)
    except OSError:
        connection.close()
        return None
    return connection


async def serve(directory: str, port: int | None) -> None:
    await Agent(directory).serve(port)


def main() -> None:
    mode, arguments = sys.argv[1], sys.argv[2:]
    if mode == "connect":
        sys.exit(connect(arguments[0], replace=arguments[1:] == ["replace"]))
    if mode == "listen":
        sys.exit(listen(arguments[0], int(arguments[1]), replace=arguments[2:] == ["replace"]))
    if mode == "pipe":
        sys.exit(pipe(arguments[0], replace=arguments[1:] == ["replace"]))
    signal.signal(signal.SIGPIPE, signal.SIG_IGN)
    os.makedirs(JOBS, exist_ok=True)
    asyncio.run(serve(arguments[0], int(arguments[1]) if len(arguments) > 1 else None))


if __name__ == "__main__":
    main()
