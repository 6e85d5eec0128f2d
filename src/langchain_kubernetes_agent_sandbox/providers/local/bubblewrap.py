"""The bubblewrap command line that isolates one command of one local sandbox.

What the sandboxed command sees: its workspace at `/app`, a private `/tmp` that lasts as long as the
sandbox, everything else read-only (the host's system folders included), a handful of harmless `/etc` files,
no network unless asked, a cleared environment, its own ipc, uts and network namespaces, the user and pid
namespaces of its sandbox's holder (shared by the sandbox's commands, no other's), no capabilities, no way
to create further user namespaces, the system-call filter of `seccomp.py`, and a session keyring of its own
(empty), never its server's. Killing the launcher's process group kills everything it started but did not detach.
"""

from __future__ import annotations

import os
import shlex
import shutil
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from ...errors import BackendUnavailableError
from .holder import JoinFds

INSTALL_HINT = (
    "bubblewrap (bwrap) is not installed, and the local provider isolates every command with it. "
    "Install it (Debian/Ubuntu: `apt-get install bubblewrap`; Fedora: `dnf install bubblewrap`; "
    "Arch: `pacman -S bubblewrap`), or, only on a machine you trust, start with --unisolated to run "
    "commands without isolation."
)

SYSTEM_FOLDERS = ("/usr", "/bin", "/sbin", "/lib", "/lib32", "/lib64", "/libx32")
ETC_ENTRIES = (
    "alternatives",
    "ld.so.cache",
    "ld.so.conf",
    "ld.so.conf.d",
    "localtime",
    "nsswitch.conf",
    "mime.types",
    "fonts",
    "matplotlibrc",
    "ssl",
    "ca-certificates",
    "ca-certificates.conf",
)
KEYCTL_INSTALL_HINT = (
    "keyctl (from keyutils) is not installed, and the local provider starts every sandboxed command in a "
    "session keyring of its own with it, so that no sandbox inherits this server's keys. Install it "
    "(Debian/Ubuntu: `apt-get install keyutils`; Fedora: `dnf install keyutils`; Arch: `pacman -S keyutils`)."
)

HOSTNAME = "sandbox"
NAME_FILES = {
    "hosts": f"127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\n127.0.1.1\t{HOSTNAME}\n",
    # No name server is reachable from a sandbox: where it has egress, proxy-aware clients (pip, git, curl, npm,
    # urllib) hand names to the proxy, which resolves them; a program that looks a name up itself gets its answer
    # at once (nothing listens on the sandbox's own port 53) instead of after the resolver's default timeouts.
    "resolv.conf": "nameserver 127.0.0.1\noptions timeout:1 attempts:1\n",
}
"""The name files every sandbox sees in /etc, whatever its network: `localhost` and its own host name resolve."""
KEY_LISTINGS = ("/proc/keys", "/proc/key-users")
SANDBOX_PATH = "/usr/local/bin:/usr/bin:/bin:/opt/sandbox/bin"


def find_bwrap() -> str:
    """The bwrap executable, or a `BackendUnavailableError` that says how to install it."""
    path = shutil.which("bwrap")
    if path is None:
        raise BackendUnavailableError(INSTALL_HINT)
    return path


def find_keyctl() -> str:
    """The keyctl executable, or a `BackendUnavailableError` that says how to install it."""
    path = shutil.which("keyctl")
    if path is None:
        raise BackendUnavailableError(KEYCTL_INSTALL_HINT)
    return path


def free_descriptor(taken: Sequence[int]) -> int:
    """A descriptor number for the launcher to open a file on: one digit (all that dash's redirections take),
    above stdio, and none of the descriptors passed to the launcher."""
    for fd in range(3, 10):
        if fd not in taken:
            return fd
    raise OSError(f"no single-digit descriptor is free beside {sorted(taken)}")


@dataclass(frozen=True)
class UserDrop:
    """Run the sandbox as this host user: a server running as root must not make sandboxed code root."""

    uid: int
    gid: int


@dataclass(frozen=True)
class Mounts:
    """Host folders of one sandbox."""

    workspace: Path
    tmp: Path
    etc: Path
    """A snapshot of the harmless part of the host's /etc, with the sandbox's own passwd and group files."""
    read_only: tuple[tuple[Path, str], ...] = ()
    """Further host folders bound read-only, each at its path inside (a fork's copy sees its source's /app)."""


def python_link_target() -> str | None:
    """Where `python` should point inside when the host has only `python3` (the deepagents suite calls both)."""
    for directory in ("/usr/local/bin", "/usr/bin", "/bin"):
        if os.path.exists(f"{directory}/python"):
            return None
    for directory in ("/usr/local/bin", "/usr/bin", "/bin"):
        if os.path.exists(f"{directory}/python3"):
            return f"{directory}/python3"
    return None


def bwrap_argv(
    bwrap: str,
    mounts: Mounts,
    *,
    cwd: str,
    own_network: bool,
    env: Mapping[str, str],
    command: Sequence[str],
    seccomp_fd: int,
    join: JoinFds | None = None,
    holder: bool = False,
) -> list[str]:
    """The full bwrap invocation; `command` runs inside with exactly `env` as its environment, under the
    system-call filter bubblewrap reads from descriptor `seccomp_fd`.

    With `join`, the command enters the namespaces of the sandbox's holder (see `holder.py`) instead of
    making its own user and pid namespaces, and stays in its launcher's process group, so that killing that
    group at the timeout kills everything it started except what it detached on purpose. `holder=True`
    builds the holder itself: detached from its parent, in a session of its own. With neither, the command
    gets user and pid namespaces of its own, which end with it (a sandbox that keeps no background processes).

    No sandbox shares the host's network namespace. A joining command with `own_network` gets a fresh one (only
    its loopback); without, it stays in the one its launcher entered, the holder's (see `launcher_argv`).
    """
    if join is not None:
        argv = [bwrap, "--userns", str(join.userns), "--userns2", str(join.userns2), "--pidns", str(join.pidns)]
        # No --die-with-parent here: to enter a pid namespace bubblewrap forks once more and the middle process
        # exits at once, and when the command has set its parent-death signal before that exit (a few
        # milliseconds on a busy machine) the command is SIGKILLed at its start (exit 137). The command stays
        # in its launcher's process group, which the timeout kills, and ends with the sandbox at the latest.
        argv += ["--unshare-ipc", "--unshare-uts", "--unshare-cgroup-try"]
        if own_network:
            argv.append("--unshare-net")
    else:
        argv = [bwrap, "--unshare-all", "--unshare-user", "--disable-userns", "--new-session"]
        if not holder:
            argv.append("--die-with-parent")
    argv += ["--hostname", HOSTNAME]
    for folder in SYSTEM_FOLDERS:
        if os.path.islink(folder):
            argv += ["--symlink", os.readlink(folder), folder]
        elif os.path.isdir(folder):
            argv += ["--ro-bind", folder, folder]
    argv += ["--ro-bind", str(mounts.etc), "/etc"]
    argv += ["--proc", "/proc", "--dev", "/dev"]
    for listing in KEY_LISTINGS:
        if os.path.exists(listing):
            # The kernel lists there the names of every key of each user mapped in the sandbox, which for a
            # server not running as root is the server's own user: unreadable instead (a device on nodev).
            argv += ["--ro-bind", "/dev/null", listing]
    argv += ["--bind", str(mounts.workspace), "/app", "--bind", str(mounts.tmp), "/tmp"]
    argv += ["--symlink", "/tmp", "/var/tmp"]
    for host, inside in mounts.read_only:
        argv += ["--ro-bind", str(host), inside]
    link_target = python_link_target()
    if link_target:
        argv += ["--dir", "/opt/sandbox/bin", "--symlink", link_target, "/opt/sandbox/bin/python"]
    # A write outside /app and /tmp would land on bwrap's per-command tmpfs root and vanish with the command:
    # refuse it instead, so the agent learns at once that only /app and /tmp keep files.
    argv += ["--remount-ro", "/", "--chdir", cwd, "--seccomp", str(seccomp_fd), "--clearenv"]
    for name, value in env.items():
        argv += ["--setenv", name, value]
    return [*argv, "--", *command]


def launcher_argv(
    inner: Sequence[str],
    *,
    procs_files: Sequence[Path],
    ulimits: Sequence[str],
    user: UserDrop | None,
    keyctl: str | None = None,
    open_files: Mapping[int, Path] | None = None,
    netns_fd: int | None = None,
) -> list[str]:
    """Wrap `inner` in a shell that joins the sandbox's cgroups, sets rlimits, moves to a new session keyring
    with `keyctl`, opens `open_files` on their descriptors, then drops to `user`.

    The launcher joins the cgroups itself, before bubblewrap starts, so that no process of the sandbox ever
    runs outside them (attaching from the parent after spawning would race with a fork bomb). `keyctl
    new_session` gives its parent, the launcher, a new empty session keyring, which everything after inherits
    instead of the server's (`keyctl session` would print the keyring's number into the command's stderr).
    With `netns_fd`, the launcher enters that network namespace (the holder's) while it still may: as root,
    before dropping to `user`.
    """
    steps = [f"echo $$ > {shlex.quote(str(path))}" for path in procs_files]
    steps += list(ulimits)
    if keyctl is not None:
        steps.append(f"{shlex.quote(keyctl)} new_session >/dev/null")
    redirects = "".join(f" {fd}<{shlex.quote(str(path))}" for fd, path in (open_files or {}).items())
    steps.append(f'exec "$@"{redirects}')
    prefix: list[str] = []
    if netns_fd is not None:
        prefix = ["nsenter", f"--net=/proc/self/fd/{netns_fd}", "--"]
    if user is not None:
        prefix += ["setpriv", f"--reuid={user.uid}", f"--regid={user.gid}", "--clear-groups", "--"]
    return ["/bin/sh", "-c", " && ".join(steps), "kas-launcher", *prefix, *inner]
