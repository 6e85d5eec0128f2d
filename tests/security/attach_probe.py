"""Run inside a sandbox (the host's python3, standard library only) while other commands start in it: for
`seconds`, look for processes of the sandbox not yet under the system-call filter (a starting command's
bubblewrap, between dropping its capabilities and installing the filter) and try to attach to each, as a
process would that wanted to make unfiltered calls through it. Print the counts as JSON."""

from __future__ import annotations

import ctypes
import json
import os
import sys
import time

libc = ctypes.CDLL(None, use_errno=True)
libc.ptrace.restype = ctypes.c_long
PTRACE_ATTACH = 16
PTRACE_DETACH = 17
WAIT_ALL = 0x40000000  # __WALL


def unfiltered(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/status") as status:
            return "Seccomp:\t0" in status.read()
    except OSError:
        return False


if __name__ == "__main__":
    deadline = time.monotonic() + float(sys.argv[1])
    seen: set[int] = set()
    attached = 0
    while time.monotonic() < deadline:
        for name in os.listdir("/proc"):
            if name.isdigit() and int(name) != os.getpid() and unfiltered(int(name)):
                pid = int(name)
                seen.add(pid)
                if libc.ptrace(PTRACE_ATTACH, pid, None, None) == 0:
                    attached += 1
                    os.waitpid(pid, WAIT_ALL)
                    libc.ptrace(PTRACE_DETACH, pid, None, None)
    print(json.dumps({"unfiltered": len(seen), "attached": attached}))
