"""Run inside a sandbox (the host's python3, standard library only): make each system call named in the JSON
table `{name: number}` given as the first argument and print `{name: errno}` as JSON, 0 meaning it succeeded.

The arguments are chosen so that, where the kernel allows it, an unfiltered call answers differently from the
filter: it succeeds (keyctl, io_uring_setup, perf_event_open, userfaultfd, open_tree) or fails for another reason
(EBADF, EFAULT, EINVAL, ENOSPC, ESRCH). With `--i386`, the keyctl call goes through the 32-bit `int 0x80` gate instead,
under its i386 number: the classic way around a filter that only knows a machine's native numbers.
"""

from __future__ import annotations

import ctypes
import json
import mmap
import os
import sys

libc = ctypes.CDLL(None, use_errno=True)
libc.syscall.restype = ctypes.c_long
AT_FDCWD = -100
SESSION_KEYRING = -3
CLONE_NEWUSER = 0x10000000
SIGCHLD = 17
PTRACE_ATTACH = 16
ABSENT_PID = 999_999
text = ctypes.c_char_p


def perf_attr() -> ctypes.Array[ctypes.c_char]:
    """A user-space-only software counter on this process: allowed to anyone at perf_event_paranoid 2."""
    attr = bytearray(64)
    attr[0:4] = (1).to_bytes(4, "little")  # PERF_TYPE_SOFTWARE
    attr[4:8] = (64).to_bytes(4, "little")  # PERF_ATTR_SIZE_VER0
    attr[8:16] = (1).to_bytes(8, "little")  # PERF_COUNT_SW_TASK_CLOCK
    attr[40:48] = ((1 << 5) | (1 << 6)).to_bytes(8, "little")  # exclude_kernel, exclude_hv
    return ctypes.create_string_buffer(bytes(attr), 64)


class Iovec(ctypes.Structure):
    _fields_ = (("base", ctypes.c_void_p), ("length", ctypes.c_size_t))


BUFFER = ctypes.create_string_buffer(8)


def one_iovec() -> Iovec:
    return Iovec(ctypes.addressof(BUFFER), 8)


ARGUMENTS: dict[str, tuple[object, ...]] = {
    "keyctl": (0, SESSION_KEYRING, 0),  # KEYCTL_GET_KEYRING_ID
    "add_key": (text(b"user"), text(b"kas-probe"), text(b"x"), 1, SESSION_KEYRING),
    "request_key": (text(b"user"), text(b"kas-probe-absent"), None, 0),
    "io_uring_setup": (1, ctypes.create_string_buffer(120)),
    "io_uring_enter": (-1, 0, 0, 0, None, 0),
    "io_uring_register": (-1, 0, None, 0),
    "perf_event_open": (perf_attr(), 0, -1, -1, 0),
    "userfaultfd": (1,),  # UFFD_USER_MODE_ONLY, allowed to unprivileged processes
    "bpf": (0, None, 0),
    "kexec_load": (0, 0, None, 0),
    "kexec_file_load": (-1, -1, 0, None, 0),
    "init_module": (None, 0, text(b"")),
    "finit_module": (-1, text(b""), 0),
    "delete_module": (text(b"kas-absent"), 0),
    "mount": (1, 1, 1, 0, None),
    "umount2": (1, 0),
    "pivot_root": (1, 1),
    "move_mount": (-1, text(b""), -1, text(b""), 0),
    "open_tree": (AT_FDCWD, text(b"/"), 0),
    "open_tree_attr": (AT_FDCWD, text(b"/"), 0, None, 0),
    "fsopen": (text(b"tmpfs"), 0),
    "fsconfig": (-1, 0, None, None, 0),
    "fsmount": (-1, 0, 0),
    "fspick": (AT_FDCWD, text(b"/"), 0),
    "mount_setattr": (-1, text(b""), 0, None, 0),
    "setns": (-1, 0),
    "clone3": (None, 0),
    "unshare": (CLONE_NEWUSER,),
    "clone": (CLONE_NEWUSER | SIGCHLD, 0, 0, 0, 0),
    "ptrace": (PTRACE_ATTACH, ABSENT_PID, None, None),
    "process_vm_writev": (ABSENT_PID, ctypes.pointer(one_iovec()), 1, ctypes.pointer(one_iovec()), 1, 0),
}
RETURN_DESCRIPTORS = {"io_uring_setup", "perf_event_open", "userfaultfd", "open_tree", "open_tree_attr"}


def call(name: str, number: int) -> int:
    result = libc.syscall(number, *ARGUMENTS[name])
    if result == 0 and name == "clone":
        os._exit(0)  # the child of a clone that was let through
    if result < 0:
        return ctypes.get_errno()
    if name in RETURN_DESCRIPTORS:
        os.close(result)
    return 0


def i386_keyctl(number: int) -> int:
    """keyctl(KEYCTL_GET_KEYRING_ID, session) through `int 0x80`: the errno, or 0 when it succeeded."""
    code = b"".join(
        (
            b"\x53",  # push rbx (callee-saved in the caller's convention)
            b"\xb8" + number.to_bytes(4, "little"),  # mov eax, number
            b"\xbb" + (0).to_bytes(4, "little"),  # mov ebx, KEYCTL_GET_KEYRING_ID
            b"\xb9" + (SESSION_KEYRING & 0xFFFFFFFF).to_bytes(4, "little"),  # mov ecx, -3
            b"\xba" + (0).to_bytes(4, "little"),  # mov edx, 0
            b"\xcd\x80",  # int 0x80
            b"\x5b",  # pop rbx
            b"\xc3",  # ret, with the answer in eax
        )
    )
    page = mmap.mmap(-1, mmap.PAGESIZE, prot=mmap.PROT_READ | mmap.PROT_WRITE | mmap.PROT_EXEC)
    page.write(code)
    address = ctypes.addressof(ctypes.c_char.from_buffer(page))
    result = ctypes.CFUNCTYPE(ctypes.c_int)(address)()
    return -result if result < 0 else 0


if __name__ == "__main__":
    table: dict[str, int] = json.loads(sys.argv[1])
    if sys.argv[2:] == ["--i386"]:
        print(json.dumps({"keyctl": i386_keyctl(table["keyctl"])}))
    else:
        print(json.dumps({name: call(name, number) for name, number in table.items()}))
