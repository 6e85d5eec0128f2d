"""The holder: one long-lived process per local sandbox whose namespaces every command joins.

Without it each command would be its own pid namespace, and everything it started would die with it. With
it, a command's processes live in the sandbox's one pid namespace: a process the command detached
(`setsid nohup ... &`, which is how jobs and the Python kernel start) outlives the command, while the
command's own process group is still killed at its timeout. The holder is started detached (its own
session, no parent-death signal), so it also survives a restart of the server; the sandbox's cgroup, or
killing the holder, ends it and everything in the sandbox.

Bubblewrap, unprivileged, nests two user namespaces (the pid namespace belongs to the outer one), so a
command joins the outer with `--userns`, switches to the inner with `--userns2` (keeping the "no further
user namespaces" rule the holder set up), and joins the pid namespace with `--pidns`.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import signal
import subprocess
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

HOLDER_COMMAND = (
    "/bin/sh",
    "-c",
    "while :; do sleep 10; n=$(find /app /tmp -maxdepth 0 -links +0 2>/dev/null | wc -l); "
    'case "$n" in 0|1) break;; esac; done; kill -KILL -1',
)
"""What the holder runs: it waits (a check that fails, say when a fork bomb exhausts the process limit, is not
taken for a deletion), and within seconds of its sandbox's folders being deleted on the host without a proper
terminate it kills every process of the sandbox: bubblewrap's init, pid 1 of the namespace, lives as long as any
of them does (a Python kernel, say), so without this the namespace would outlive its sandbox for good."""

_NS_GET_PARENT = 0xB702
_START_TIMEOUT = 5.0


@dataclass(frozen=True)
class HolderRecord:
    """Where the holder is: three host processes, each named by its pid and its start time.

    A pid alone is not a name: the machine reuses pids within minutes under load, and a record that outlived
    its holder would then point at a stranger (another sandbox's processes, whose commands a kill would end).
    The start time, which a reused pid never shares, makes the pair unique.
    """

    outer_pid: int
    outer_start: int
    pid: int
    start: int
    init_pid: int
    """The namespace's pid 1 (bubblewrap's init): killing it ends every process in the namespace."""
    init_start: int

    @property
    def processes(self) -> tuple[tuple[int, int], ...]:
        return ((self.init_pid, self.init_start), (self.pid, self.start), (self.outer_pid, self.outer_start))


@dataclass(frozen=True)
class JoinFds:
    """Open namespace descriptors for bubblewrap's `--userns`, `--userns2` and `--pidns`, and the holder's network
    namespace for the launcher to enter (`nsenter`); closed on exit."""

    userns: int
    userns2: int
    pidns: int
    netns: int

    @property
    def all(self) -> tuple[int, int, int, int]:
        return (self.userns, self.userns2, self.pidns, self.netns)

    def __enter__(self) -> JoinFds:
        return self

    def __exit__(self, *exc_info: object) -> None:
        for fd in self.all:
            os.close(fd)


class Holder:
    """Starts, finds and ends the holder of one sandbox; its record lives beside the sandbox's."""

    def __init__(self, folder: Path) -> None:
        self._file = folder / "holder.json"
        self._lock = folder / "holder.lock"

    def current(self) -> HolderRecord | None:
        """The running holder, or None when there is none (never started, killed, or the machine rebooted)."""
        try:
            record = HolderRecord(**json.loads(self._file.read_text()))
        except (OSError, ValueError, TypeError):
            return None
        return record if process_start(record.pid) == record.start else None

    def ensure(self, launch: Sequence[str]) -> tuple[HolderRecord, bool]:
        """The running holder, starting one with the launcher command `launch` if needed.

        Returns the record and whether it was (re)started, in which case every earlier background process
        of the sandbox is gone.
        """
        with self._locked():
            record = self.current()
            if record is not None:
                return record, False
            existed = self._file.exists()
            record = self._start(launch)
            staging = self._file.with_suffix(".part")
            staging.write_text(json.dumps(record.__dict__))
            staging.replace(self._file)
            return record, existed

    def join(self, record: HolderRecord) -> JoinFds:
        """Descriptors of the holder's namespaces, for one command to enter them.

        Raises ProcessLookupError when the holder has ended.
        """
        opened: list[int] = []
        try:
            inner = os.open(f"/proc/{record.pid}/ns/user", os.O_RDONLY | os.O_CLOEXEC)
            opened.append(inner)
            opened.append(fcntl.ioctl(inner, _NS_GET_PARENT))
            opened.append(os.open(f"/proc/{record.pid}/ns/pid", os.O_RDONLY | os.O_CLOEXEC))
            opened.append(os.open(f"/proc/{record.pid}/ns/net", os.O_RDONLY | os.O_CLOEXEC))
            # Checked after opening: had the holder ended and its pid gone to another process meanwhile, these
            # would be that process's namespaces.
            if process_start(record.pid) != record.start:
                raise ProcessLookupError
        except OSError as error:
            for fd in opened:
                os.close(fd)
            raise ProcessLookupError(f"the sandbox's holder (pid {record.pid}) has ended") from error
        return JoinFds(userns=opened[1], userns2=opened[0], pidns=opened[2], netns=opened[3])

    def stop(self) -> None:
        """Kill the holder; its pid namespace, and every process of the sandbox in it, goes with it."""
        record = self.current()
        if record is not None:
            for pid, start in record.processes:
                _kill_if_same(pid, start)
        self._file.unlink(missing_ok=True)

    @contextlib.contextmanager
    def _locked(self) -> Iterator[None]:
        fd = os.open(self._lock, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            yield
        finally:
            os.close(fd)

    def _start(self, launch: Sequence[str]) -> HolderRecord:
        # A shell that starts the holder in the background and exits: the holder is orphaned at once, so no
        # process of ours ever has to reap it, and start_new_session leaves it no controlling terminal.
        starter = subprocess.run(
            ["/bin/sh", "-c", '"$@" </dev/null >/dev/null 2>&1 & echo $!', "kas-holder", *launch],
            capture_output=True,
            text=True,
            start_new_session=True,
            env={"PATH": "/usr/sbin:/usr/bin:/sbin:/bin"},
            cwd="/",
            check=False,
            timeout=_START_TIMEOUT,
        )
        outer = int(starter.stdout.strip())
        own_ns = os.stat("/proc/self/ns/pid").st_ino
        deadline = time.monotonic() + _START_TIMEOUT
        while time.monotonic() < deadline:
            found = _grandchild(outer)
            if found is not None:
                init, keeper = found
                with contextlib.suppress(OSError):
                    if os.stat(f"/proc/{keeper}/ns/pid").st_ino != own_ns:
                        outer_start, start, init_start = (process_start(pid) for pid in (outer, keeper, init))
                        if outer_start and start and init_start:
                            return HolderRecord(outer, outer_start, keeper, start, init, init_start)
            time.sleep(0.005)
        with contextlib.suppress(ProcessLookupError):
            os.kill(outer, signal.SIGKILL)
        raise OSError(f"the sandbox's holder process did not start: {starter.stderr.strip()}")


def _children(pid: int) -> list[int]:
    try:
        return [int(child) for child in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()]
    except OSError:
        return []


def _grandchild(pid: int) -> tuple[int, int] | None:
    """bwrap's child is the pid namespace's init, whose child runs `HOLDER_COMMAND`: both their pids."""
    for init in _children(pid):
        for keeper in _children(init):
            return init, keeper
    return None


def process_start(pid: int) -> int | None:
    """When process `pid` started (clock ticks since boot), or None when there is no such process."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    # The command name in parentheses may hold spaces and parentheses itself, so count from the last ")":
    # the start time is the 22nd field, the 20th after it.
    return int(stat.rpartition(")")[2].split()[19])


def _kill_if_same(pid: int, start: int) -> None:
    """SIGKILL process `pid` only if it is still the one that started at `start`, not a later owner of its pid."""
    try:
        pidfd = os.pidfd_open(pid)
    except OSError:
        return
    try:
        # The descriptor pins the process it was opened on; the start time, read after, says which one that is.
        if process_start(pid) == start:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                signal.pidfd_send_signal(pidfd, signal.SIGKILL)
    finally:
        os.close(pidfd)
