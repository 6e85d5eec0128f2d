"""The system-call filter every process of a local sandbox runs under: the one place that says which calls are
refused, and why.

Bubblewrap installs it (`--seccomp FD`) in the sandbox's init and its command just before they exec, so every
process of a sandbox, the holder included, carries it and passes it on to all it starts. It is a classic BPF
program built here, so it needs no library: it checks the architecture of each call, refuses the calls below
with an errno (a few only for what their first argument asks), and allows everything else. A process that
cannot call into a kernel interface cannot exploit it; nothing below is needed by ordinary programs (shells,
compilers, pip, git, Python, Node), which keep working.

Each architecture the host runs numbers its calls differently: x86_64 (with the 32-bit i386 calls every
x86_64 process can make through `int 0x80`, refused by their own numbers, and the x32 calls, refused whole)
and aarch64. A call of any other architecture kills the process: the filter could not tell what it is.
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import os
import platform
import secrets
import struct
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from ...errors import BackendUnavailableError


@dataclass(frozen=True)
class Refusal:
    """Calls refused with one errno, for one reason."""

    calls: tuple[str, ...]
    errno: int
    reason: str


REFUSED = (
    Refusal(
        ("keyctl", "add_key", "request_key"),
        errno.EPERM,
        "Kernel keyrings: the session keyring a process inherits may be its server's, holding the server's "
        "secrets, and a sandbox has no keys of its own to keep.",
    ),
    Refusal(
        ("io_uring_setup", "io_uring_enter", "io_uring_register"),
        errno.ENOSYS,
        "io_uring: a large, often-exploited kernel surface. ENOSYS, the answer of a kernel built without it, "
        "makes programs that probe for it (libuv in Node, for one) fall back to ordinary calls.",
    ),
    Refusal(
        ("perf_event_open",),
        errno.EPERM,
        "Performance counters: a side channel on the host and a history of privilege escalations.",
    ),
    Refusal(
        ("userfaultfd",),
        errno.EPERM,
        "userfaultfd: lets a process stall the kernel mid-copy at will, the usual lever of kernel race exploits.",
    ),
    Refusal(("bpf",), errno.EPERM, "eBPF programs run inside the kernel."),
    Refusal(
        ("kexec_load", "kexec_file_load", "init_module", "finit_module", "delete_module"),
        errno.EPERM,
        "Replacing the kernel or loading code into it.",
    ),
    Refusal(
        (
            "mount",
            "umount",
            "umount2",
            "pivot_root",
            "move_mount",
            "open_tree",
            "open_tree_attr",
            "fsopen",
            "fsconfig",
            "fsmount",
            "fspick",
            "mount_setattr",
        ),
        errno.EPERM,
        "Mounts: a sandbox's filesystem is fixed when it starts, and filesystem parsers are kernel attack surface.",
    ),
    Refusal(
        ("setns",),
        errno.EPERM,
        "Joining namespaces: a sandbox has none to join, and the descriptors of its holder's namespaces that "
        "bubblewrap was handed stay open in the command.",
    ),
    Refusal(
        ("process_vm_writev",),
        errno.EPERM,
        "Writing another process's memory: the same reach into a starting bubblewrap as attaching to it.",
    ),
    Refusal(
        ("clone3",),
        errno.ENOSYS,
        "clone3 passes its flags in memory, where the filter cannot see whether they ask for a new user "
        "namespace; ENOSYS makes the C library fall back to clone, whose flags it checks.",
    ),
)


@dataclass(frozen=True)
class ArgumentRefusal:
    """Calls refused (EPERM) when their first argument asks for one thing: any of `bits` set, or one of `values`.

    Only the argument's low 32 bits are seen (what these little-endian machines put first); every flag and
    request below lies in them, and a call with higher bits set as well is refused too, which is harmless.
    """

    calls: tuple[str, ...]
    reason: str
    bits: int = 0
    values: tuple[int, ...] = ()


NEW_USER_NAMESPACE = 0x10000000
"""CLONE_NEWUSER."""
PTRACE_ATTACH = 16
PTRACE_SEIZE = 0x4206

REFUSED_BY_ARGUMENT = (
    ArgumentRefusal(
        ("clone", "unshare"),
        "New user namespaces: one gives its creator every capability inside it, and with them the kernel's whole "
        "namespaced surface. bubblewrap's --disable-userns forbids them too; this is the second lock. Other "
        "namespaces need capabilities a sandbox does not have.",
        bits=NEW_USER_NAMESPACE,
    ),
    ArgumentRefusal(
        ("ptrace",),
        "Attaching to a running process: while a new command's bubblewrap sets up, it runs in the sandbox's pid "
        "namespace, as the sandbox's user, dumpable and not yet filtered, and a process of the sandbox that "
        "attached to it could make unfiltered calls through it. Debuggers that start their program (gdb, "
        "strace; PTRACE_TRACEME) still work, attaching to one already running (gdb -p, strace -p) does not.",
        values=(PTRACE_ATTACH, PTRACE_SEIZE),
    ),
)

X32_SYSCALL_BIT = 0x40000000

# The numbers come from the kernel's uapi headers (asm/unistd_64.h, asm/unistd_32.h, asm-generic/unistd.h);
# calls added since 4.x (io_uring, the new mount API, clone3) share one number on every architecture.
_SHARED = {
    "io_uring_setup": 425,
    "io_uring_enter": 426,
    "io_uring_register": 427,
    "open_tree": 428,
    "move_mount": 429,
    "fsopen": 430,
    "fsconfig": 431,
    "fsmount": 432,
    "fspick": 433,
    "clone3": 435,
    "mount_setattr": 442,
    "open_tree_attr": 467,
}
_X86_64 = {
    **_SHARED,
    "keyctl": 250,
    "add_key": 248,
    "request_key": 249,
    "perf_event_open": 298,
    "userfaultfd": 323,
    "bpf": 321,
    "kexec_load": 246,
    "kexec_file_load": 320,
    "init_module": 175,
    "finit_module": 313,
    "delete_module": 176,
    "mount": 165,
    "umount2": 166,
    "pivot_root": 155,
    "setns": 308,
    "unshare": 272,
    "clone": 56,
    "ptrace": 101,
    "process_vm_writev": 311,
}
_I386 = {
    **_SHARED,
    "keyctl": 288,
    "add_key": 286,
    "request_key": 287,
    "perf_event_open": 336,
    "userfaultfd": 374,
    "bpf": 357,
    "kexec_load": 283,
    "init_module": 128,
    "finit_module": 350,
    "delete_module": 129,
    "mount": 21,
    "umount": 22,
    "umount2": 52,
    "pivot_root": 217,
    "setns": 346,
    "unshare": 310,
    "clone": 120,
    "ptrace": 26,
    "process_vm_writev": 348,
}
_AARCH64 = {
    **_SHARED,
    "keyctl": 219,
    "add_key": 217,
    "request_key": 218,
    "perf_event_open": 241,
    "userfaultfd": 282,
    "bpf": 280,
    "kexec_load": 104,
    "kexec_file_load": 294,
    "init_module": 105,
    "finit_module": 273,
    "delete_module": 106,
    "mount": 40,
    "umount2": 39,
    "pivot_root": 41,
    "setns": 268,
    "unshare": 97,
    "clone": 220,
    "ptrace": 117,
    "process_vm_writev": 271,
}


@dataclass(frozen=True)
class Architecture:
    """One calling convention the kernel may report in `seccomp_data.arch`."""

    audit_arch: int
    numbers: Mapping[str, int]
    """Call numbers by name; a refused call this architecture lacks is simply absent."""
    x32: bool = False
    """Whether calls with the x32 bit set arrive under this architecture's audit value (x86_64 only)."""


X86_64 = Architecture(0xC000003E, _X86_64, x32=True)
I386 = Architecture(0x40000003, _I386)
AARCH64 = Architecture(0xC00000B7, _AARCH64)
ARCHITECTURES = {"x86_64": (X86_64, I386), "aarch64": (AARCH64,)}
"""What each host machine needs filtered: every calling convention a process on it can use."""

# Classic BPF, as in linux/filter.h and linux/seccomp.h.
_LOAD_WORD = 0x20  # BPF_LD | BPF_W | BPF_ABS
_JUMP_EQUAL = 0x15  # BPF_JMP | BPF_JEQ | BPF_K
_JUMP_AT_LEAST = 0x35  # BPF_JMP | BPF_JGE | BPF_K
_JUMP_ANY_BIT = 0x45  # BPF_JMP | BPF_JSET | BPF_K
_RETURN = 0x06  # BPF_RET | BPF_K
_KILL_PROCESS = 0x80000000
_ERRNO = 0x00050000
_ALLOW = 0x7FFF0000
_NR_OFFSET = 0
_ARCH_OFFSET = 4
_FIRST_ARGUMENT_LOW_WORD = 16
"""args[0] begins at byte 16 of seccomp_data, its low 32 bits first on these little-endian machines."""
_LONGEST_JUMP = 255

Instruction = tuple[int, int, int, int]


def _statement(code: int, k: int) -> Instruction:
    return (code, 0, 0, k)


def _refuse(call_errno: int) -> Instruction:
    return _statement(_RETURN, _ERRNO | call_errno)


def _block(architecture: Architecture) -> list[Instruction]:
    """The instructions that judge one call of `architecture`: each ends in a return."""
    numbers = architecture.numbers
    block = [_statement(_LOAD_WORD, _NR_OFFSET)]
    if architecture.x32:
        block += [(_JUMP_AT_LEAST, 0, 1, X32_SYSCALL_BIT), _refuse(errno.ENOSYS)]
    for refusal in REFUSED:
        for call in refusal.calls:
            if call in numbers:
                block += [(_JUMP_EQUAL, 0, 1, numbers[call]), _refuse(refusal.errno)]
    for by_argument in REFUSED_BY_ARGUMENT:
        bits, values = by_argument.bits, by_argument.values
        checks = [(_JUMP_ANY_BIT, bits)] if bits else [(_JUMP_EQUAL, value) for value in values]
        for call in by_argument.calls:
            # call? load the argument; any check true: jump over the ALLOW to the refusal.
            block += [
                (_JUMP_EQUAL, 0, len(checks) + 3, numbers[call]),
                _statement(_LOAD_WORD, _FIRST_ARGUMENT_LOW_WORD),
            ]
            block += [(code, len(checks) - index, 0, k) for index, (code, k) in enumerate(checks)]
            block += [_statement(_RETURN, _ALLOW), _refuse(errno.EPERM)]
    block.append(_statement(_RETURN, _ALLOW))
    return block


def program(architectures: Sequence[Architecture]) -> bytes:
    """The filter as bubblewrap reads it: an array of `struct sock_filter` in the machine's byte order."""
    instructions = [_statement(_LOAD_WORD, _ARCH_OFFSET)]
    for architecture in architectures:
        block = _block(architecture)
        if len(block) > _LONGEST_JUMP:
            raise ValueError("a filter block is longer than one BPF jump can skip")
        instructions += [(_JUMP_EQUAL, 0, len(block), architecture.audit_arch), *block]
    instructions.append(_statement(_RETURN, _KILL_PROCESS))
    return b"".join(struct.pack("=HBBI", *instruction) for instruction in instructions)


def host_program() -> bytes:
    """The filter for this machine, or a `BackendUnavailableError` where the provider has none."""
    machine = platform.machine()
    if machine not in ARCHITECTURES:
        raise BackendUnavailableError(
            f"The local provider has no system-call filter for this machine's architecture ({machine}; it knows "
            f"{', '.join(ARCHITECTURES)}), and it runs no sandbox without one. Only on a machine you trust, "
            "start with --unisolated to run commands without isolation."
        )
    return program(ARCHITECTURES[machine])


def install(folder: Path) -> Path:
    """The host's filter as a file in `folder`, for each launcher to open afresh (bubblewrap reads its
    descriptor from the start to the end, so one shared descriptor would serve only the first command).

    Named by its content, so servers of different versions sharing a state folder each find their own.
    """
    data = host_program()
    path = folder / f"seccomp-{hashlib.sha256(data).hexdigest()[:16]}.bpf"
    with contextlib.suppress(OSError):
        if path.read_bytes() == data:
            return path
    staging = folder / f".seccomp-{secrets.token_hex(6)}"
    staging.write_bytes(data)
    staging.chmod(0o600)
    os.replace(staging, path)
    return path
