"""The Python kernel that runs INSIDE a sandbox (standard library only; copied there as a file).

`python3 program.py serve KERNEL_DIR` keeps one namespace for the session: it reads requests from the FIFO
`KERNEL_DIR/in`, one line each, `JOB_FOLDER TIMEOUT [MAX HEAD TAIL]` (a job folder of `jobs.py` holding
`cell.py`, and the output limits of its report), and for each:

* opens `JOB/reply` (a FIFO a waiting caller reads: one byte once the cell is done, end-of-file if the kernel
  died),
* runs the cell with fd 1 and 2 appended to `JOB/stdout` and `JOB/stderr` (so subprocesses' output lands there
  too) and stdin at end-of-file,
* writes `JOB/meta.json` (the repr of a trailing expression, bounded; the error; the figures saved), then
  `JOB/exit` as a job's wrapper would: 0, 1 after an exception, 124 after its timeout, 130 after a cancel,
  and, given the output limits, the job's report as `jobs.py` would print it (so the caller only reads it).

At TIMEOUT seconds the kernel interrupts the cell itself (KeyboardInterrupt in the agent's code), as it does
on SIGINT or SIGTERM (a job_cancel); the namespace survives. A cell that does not stop within a grace period
(stuck in C code) makes the kernel record that, and kill itself: the next call starts a new one.
`python3 program.py once JOB TIMEOUT` runs one cell the same way in a fresh process (no state kept).

`python3 -c SOURCE agent REQUESTS REPLIES` is the kernel of a sandbox's agent (`agent.py`), which starts it from
its own copy of this program: one JSON line per cell on the REQUESTS descriptor, one JSON line per cell back on
REPLIES, the cell's output on fds 1 and 2 (pipes the agent reads), each ended by the cell's marker.
"""

from __future__ import annotations

import ast
import base64
import contextlib
import io
import json
import linecache
import os
import signal
import sys
import threading
import time
import traceback
from typing import Any

MAX_REPR = 10_000
MAX_FIGURES_SAVED = 50
FIGURE_BUDGET = int(os.environ.get("KAS_FIGURE_BUDGET", "262144"))
MIN_SIDE = 64
"""Pixels on the longer side below which a figure is not shrunk further to meet the byte budget."""
CELL_NAME = "<cell>"
KERNEL_FILE = globals().get("__file__", "<string>")
"""This program's own frames, left out of tracebacks: a file, or `-c` source when the agent starts it."""
GRACE = 3.0
"""Seconds a cell gets to stop once interrupted before the kernel gives up on it and ends itself."""


class Timeout(KeyboardInterrupt):
    """The cell ran past its time limit."""


def _bounded_repr(value: object) -> str:
    try:
        text = repr(value)
    except BaseException as error:
        return f"<repr failed: {type(error).__name__}: {error}>"
    if len(text) > MAX_REPR:
        return text[: MAX_REPR // 2] + f" ...[{len(text) - MAX_REPR} characters dropped]... " + text[-MAX_REPR // 2 :]
    return text


def _save_figures(job: str, count_before: int) -> tuple[list[dict[str, Any]], int]:
    """Save every open matplotlib figure as a PNG within the byte budget (lower dpi until it fits), close it."""
    pyplot = sys.modules.get("matplotlib.pyplot")
    if pyplot is None:
        return [], 0
    saved: list[dict[str, Any]] = []
    numbers = list(pyplot.get_fignums())
    for index, number in enumerate(numbers):
        figure = pyplot.figure(number)
        if index >= MAX_FIGURES_SAVED:
            pyplot.close(figure)
            continue
        path = f"{job}/figure-{count_before + index + 1}.png"
        entry: dict[str, Any] = {"path": path}
        try:
            dpi = float(figure.dpi)
            figure.savefig(path, format="png", dpi=dpi)
            size = os.path.getsize(path)
            entry.update(width=int(figure.get_figwidth() * dpi), height=int(figure.get_figheight() * dpi))
            inline = path
            min_dpi = MIN_SIDE / max(figure.get_figwidth(), figure.get_figheight(), 0.01)
            while size > FIGURE_BUDGET and dpi > min_dpi:
                dpi = max(min_dpi, dpi * (FIGURE_BUDGET / size) ** 0.5 * 0.8)
                inline = f"{job}/figure-{count_before + index + 1}-small.png"
                figure.savefig(inline, format="png", dpi=dpi)
                size = os.path.getsize(inline)
            entry.update(inline=inline if size <= FIGURE_BUDGET else None, inline_bytes=size, inline_dpi=dpi)
        except Exception as error:
            entry.update(error=f"{type(error).__name__}: {error}")
        saved.append(entry)
        pyplot.close(figure)
    return saved, len(numbers)


class Kernel:
    def __init__(self) -> None:
        self.pid = os.getpid()
        self.namespace: dict[str, Any] = {"__name__": "__main__", "__builtins__": __builtins__}
        self.cells = 0
        self.figures = 0
        self.running = False
        self.job = ""
        self.why = ""

    def _interrupt(self, signum: int, _frame: object) -> None:
        if not self.running:
            return
        self.why = "timeout" if signum == signal.SIGALRM else "cancel"
        threading.Thread(target=self._give_up, args=(self.job, self.cells), daemon=True).start()
        if signum == signal.SIGALRM:
            raise Timeout
        raise KeyboardInterrupt

    def _give_up(self, job: str, cell: int) -> None:
        """If the interrupted cell is still running after the grace period, record it and end the kernel."""
        time.sleep(GRACE)
        if self.running and self.job == job and self.cells == cell:
            _write(f"{job}/interrupted", "lost\n")
            _write(f"{job}/exit", "124\n" if self.why == "timeout" else "130\n")
            os.kill(os.getpid(), signal.SIGKILL)

    def run(self, job: str, timeout: float) -> int:
        """A cell of the file protocol: source in `job/cell.py`, output appended to the job's files, results in its
        `meta.json` and `exit` (the shell fallback of runtimes with nothing but a shell)."""
        with open(f"{job}/cell.py", encoding="utf-8") as source:
            code = source.read()
        out = os.open(f"{job}/stdout", os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        err = os.open(f"{job}/stderr", os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        saved_fds = (os.dup(1), os.dup(2))
        os.dup2(out, 1)
        os.dup2(err, 2)
        os.close(out)
        os.close(err)
        try:
            status, meta = self.cell(code, timeout, job)
        finally:
            os.dup2(saved_fds[0], 1)
            os.dup2(saved_fds[1], 2)
            for fd in saved_fds:
                os.close(fd)
        if status in (124, 130):
            _write(f"{job}/interrupted", "kept\n")
        # UTF-8 rather than \u escapes keeps it under SMALL_FILE_BYTES: a bounded value and 50 figure entries.
        _write(f"{job}/meta.json", json.dumps(meta, ensure_ascii=False))
        _write(f"{job}/exit", f"{status}\n")
        return status

    def cell(self, code: str, timeout: float, folder: str) -> tuple[int, dict[str, Any]]:
        """Run one cell with its output on fds 1 and 2 as they are; figures are saved in `folder`."""
        self.cells += 1
        meta: dict[str, Any] = {"cell": self.cells, "value": None, "error": None, "figures": []}
        sys.stdout = open(1, "w", buffering=1, encoding="utf-8", errors="replace", closefd=False)  # noqa: SIM115
        sys.stderr = open(2, "w", buffering=1, encoding="utf-8", errors="replace", closefd=False)  # noqa: SIM115
        sys.stdin = io.StringIO("")
        started = time.monotonic()
        status = 0
        self.job, self.why = folder, ""
        try:
            self.running = True
            signal.setitimer(signal.ITIMER_REAL, max(timeout, 0.001))
            meta["value"] = self._execute(code)
        except SystemExit as error:
            # As `python3 -c` would: sys.exit(n) is exit code n, a message goes to stderr, and no traceback.
            status = error.code if isinstance(error.code, int) else 0 if error.code is None else 1
            if not isinstance(error.code, int | None):
                print(error.code, file=sys.stderr)
        except BaseException as error:
            status = 124 if isinstance(error, Timeout) else 130 if self.why else 1
            meta["error"] = f"{type(error).__name__}: {error}"[:MAX_REPR]
            if isinstance(error, Timeout):
                meta["error"] = f"interrupted at the time limit of {timeout:g} s"
            _print_traceback(error)
        finally:
            self.running = False
            signal.setitimer(signal.ITIMER_REAL, 0)
        if os.getpid() != self.pid:
            # A process the cell forked, returning from the cell: it is not the kernel. Left to go on, it would
            # report this cell a second time and then serve later cells with a namespace of its own.
            for stream in (sys.stdout, sys.stderr):
                with contextlib.suppress(Exception):
                    stream.flush()
            os._exit(status)
        with contextlib.suppress(Exception):
            figures, made = _save_figures(folder, self.figures)
            self.figures += len(figures)
            meta["figures"] = figures
            meta["figures_made"] = made
        meta["duration"] = time.monotonic() - started
        for stream in (sys.stdout, sys.stderr):
            with contextlib.suppress(Exception):
                stream.flush()
        sys.stdout, sys.stderr = sys.__stdout__, sys.__stderr__
        return status, meta

    def _execute(self, code: str) -> str | None:
        linecache.cache[CELL_NAME] = (len(code), None, code.splitlines(keepends=True), CELL_NAME)
        tree = ast.parse(code, CELL_NAME, "exec")
        last = tree.body[-1] if tree.body and isinstance(tree.body[-1], ast.Expr) else None
        if last is not None:
            tree.body.pop()
        exec(compile(tree, CELL_NAME, "exec"), self.namespace)
        if last is None:
            return None
        value = eval(compile(ast.Expression(last.value), CELL_NAME, "eval"), self.namespace)
        if value is None:
            return None
        self.namespace["_"] = value
        return _bounded_repr(value)


def _print_traceback(error: BaseException) -> None:
    """The traceback from the agent's own code on: the kernel's frames are left out, line numbers are the cell's."""
    exception = traceback.TracebackException.from_exception(error)
    exception.stack = traceback.StackSummary.from_list(
        [frame for frame in exception.stack if frame.filename != KERNEL_FILE]
    )
    text = "".join(exception.format())
    try:
        sys.stderr.write(text)
        sys.stderr.flush()
    except Exception:
        with contextlib.suppress(OSError):
            os.write(2, text.encode("utf-8", "replace"))


REPORTED_FILES = ("kernel-state", "interrupted", "meta.json")
SMALL_FILE_BYTES = 65536
CUT = "<<kas: output cut here>>"


def _stream(path: str, max_bytes: int, head: int, tail: int) -> tuple[bytes, int]:
    """The file whole when within max_bytes, else its head, a cut line and its tail (as `jobs.py` prints it)."""
    try:
        with open(path, "rb") as file:
            size = os.fstat(file.fileno()).st_size
            if size <= max_bytes:
                return file.read(size), size
            first = file.read(max(head, 0))
            file.seek(size - tail)
            return first + f"\n{CUT}\n".encode() + file.read(tail), size
    except OSError:
        return b"", 0


def write_report(job: str, status: int, limits: tuple[int, int, int]) -> None:
    """What `jobs.py`'s report would print for this finished cell, written by the kernel so the caller need
    only `cat` it: `report.out` (header, small files, stdout) and `report.err` (stderr)."""
    max_bytes, head, tail = limits
    extra = b""
    for name in REPORTED_FILES:
        with contextlib.suppress(OSError):
            with open(f"{job}/{name}", "rb") as file:
                content = file.read(SMALL_FILE_BYTES)
            entry = f"KASFILE {name} ".encode() + base64.b64encode(content) + b"\n"
            if content and len(extra) + len(entry) <= head // 2:
                extra += entry
    out, out_size = _stream(f"{job}/stdout", max_bytes - len(extra), head - len(extra), tail)
    err, err_size = _stream(f"{job}/stderr", max_bytes, head, tail)
    try:
        with open(f"{job}/limit") as file:
            limit, started = file.read().split()
    except (OSError, ValueError):
        limit, started = "0", "0"
    header = f"KASJOB exited {status} {out_size} {err_size} {limit} {started}\n".encode()
    with open(f"{job}/report.err", "wb") as file:
        file.write(err)
    with open(f"{job}/report.out.part", "wb") as file:
        file.write(header + extra + out)
    os.replace(f"{job}/report.out.part", f"{job}/report.out")


def _write(path: str, text: str) -> None:
    """Write a whole small file atomically (readers see it complete or not at all)."""
    with contextlib.suppress(OSError):
        with open(f"{path}.part", "w", encoding="utf-8") as file:
            file.write(text)
        os.replace(f"{path}.part", path)


def serve(directory: str) -> None:
    kernel = Kernel()
    for number in (signal.SIGINT, signal.SIGTERM, signal.SIGALRM):
        signal.signal(number, kernel._interrupt)
    requests = os.open(f"{directory}/in", os.O_RDWR)
    with open(f"{directory}/ready.part", "w") as ready:
        ready.write(str(os.getpid()))
    os.replace(f"{directory}/ready.part", f"{directory}/ready")
    buffer = b""
    previous: int | None = None
    while True:
        chunk = os.read(requests, 4096)
        buffer += chunk
        while b"\n" in buffer:
            line, buffer = buffer.split(b"\n", 1)
            job, limit, *sizes = line.decode("utf-8", "replace").strip().split(" ")
            if not job:
                continue
            if previous is not None:
                os.close(previous)
                previous = None
            try:
                reply = os.open(f"{job}/reply", os.O_RDWR)
            except OSError:
                continue
            _write(f"{directory}/current", job)
            status = 1
            try:
                status = kernel.run(job, float(limit))
            except Exception as error:
                with contextlib.suppress(OSError):
                    os.write(2, f"kernel: {type(error).__name__}: {error}\n".encode())
                _write(f"{job}/exit", "1\n")
            if len(sizes) == 3:
                with contextlib.suppress(Exception):
                    write_report(job, status, (int(sizes[0]), int(sizes[1]), int(sizes[2])))
            # One byte says "done"; the FIFO stays open (so the byte stays readable) until the next cell, and
            # if the kernel dies its reader sees end-of-file instead.
            with contextlib.suppress(OSError):
                os.write(reply, b"x")
            previous = reply


def once(job: str, limit: float) -> int:
    kernel = Kernel()
    for number in (signal.SIGINT, signal.SIGTERM, signal.SIGALRM):
        signal.signal(number, kernel._interrupt)
    return kernel.run(job, limit)


def agent(requests_fd: int, replies_fd: int) -> None:
    """Serve the sandbox's agent: one JSON line per cell in, one JSON line per cell out, output on fds 1 and 2,
    each stream ended by the cell's marker so the agent knows where this cell's output stops."""
    global FIGURE_BUDGET
    kernel = Kernel()
    for number in (signal.SIGINT, signal.SIGTERM, signal.SIGALRM):
        signal.signal(number, kernel._interrupt)
    requests = os.fdopen(requests_fd, "rb", buffering=0)
    for line in iter(requests.readline, b""):
        request = json.loads(line)
        FIGURE_BUDGET = int(request.get("budget", FIGURE_BUDGET))
        status, meta = kernel.cell(request["code"], float(request["timeout"]), request["folder"])
        marker = f"\x00kas-end-{request['nonce']}\x00".encode()
        marked = []
        for fd in (1, 2):
            try:
                os.write(fd, marker)
                marked.append(True)
            except OSError:
                marked.append(False)
        reply = {**meta, "status": status, "interrupted": status in (124, 130), "marked": marked}
        os.write(replies_fd, (json.dumps(reply, ensure_ascii=False) + "\n").encode())


if __name__ == "__main__":
    os.environ.setdefault("MPLBACKEND", "Agg")
    if sys.argv[1] == "serve":
        serve(sys.argv[2])
    elif sys.argv[1] == "agent":
        agent(int(sys.argv[2]), int(sys.argv[3]))
    else:
        sys.exit(once(sys.argv[2], float(sys.argv[3])))
