"""How the local provider reaches a sandbox's agent: one connection per sandbox and server process.

The server starts `agent.py connect` inside the sandbox (joining its holder, like any command), with a Unix
socket as its stdin. Inside, it connects to the agent's socket (starting the agent if none answers) and sends
the connected descriptor back over that stdin; then it exits. The socket's path is resolved inside the
sandbox, so whatever the sandbox put there can only lead to something of its own, and the host never follows a
path, link or socket the sandbox controls: it only receives one descriptor, which it checks is a socket.
`PORT_HELPER` hands over a TCP connection to a port of the sandbox's network the same way: made inside the
sandbox's network namespace, where it stays, so the host talks to the sandbox's own loopback and to nothing else,
with no process of the sandbox's relaying the bytes.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import socket
import stat
from collections.abc import Awaitable, Callable, Sequence

from ...engine import budget, program
from ...engine.channel import Connection
from ...engine.links import Connect
from ...errors import SandboxError

PORT_HELPER = """import socket, sys
port = int(sys.argv[1])
for host in ("127.0.0.1", "::1"):
    try:
        connection = socket.create_connection((host, port), timeout=5)
        break
    except OSError as error:
        failure = error
else:
    sys.stderr.write(f"nothing listens on port {port} in the sandbox ({failure.strerror or failure})\\n")
    sys.exit(1)
socket.send_fds(socket.socket(fileno=0), [b"c"], [connection.fileno()])
"""
"""Run with `python3 -c PORT_HELPER PORT` in the sandbox, its stdin a Unix socket: connects to the port on the
sandbox's loopback (IPv4, then IPv6) and sends the connected socket back."""
TCP_FAMILIES = (socket.AF_INET, socket.AF_INET6)

Launch = Callable[[Sequence[str], socket.socket], Awaitable[asyncio.subprocess.Process]]
"""Starts a command inside the sandbox with the given socket as its stdin."""


def agent_connection(sandbox_id: str, install: Callable[[], Awaitable[None]], launch: Launch) -> Connect:
    """How this provider opens a connection to a sandbox's agent: install the program, then `agent.py connect`."""

    async def connect(replace: bool) -> Connection:
        await install()
        connection = await handed_over(
            sandbox_id,
            launch,
            ["/bin/sh", "-c", 'exec python3 -u -E -s -S "$0/agent.py" connect "$0" "$@"', program.AGENT_DIR]
            + (["replace"] if replace else []),
            what="The agent",
        )
        return await asyncio.open_unix_connection(sock=connection)

    return connect


async def handed_over(
    sandbox_id: str,
    launch: Launch,
    helper: Sequence[str],
    *,
    what: str,
    families: tuple[int, ...] = (socket.AF_UNIX,),
) -> socket.socket:
    """The connected stream socket, of one of `families`, that `helper`, started in the sandbox with a socket as
    its stdin, hands back."""
    ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        with theirs:
            process = await launch(helper, theirs)
        try:
            async with asyncio.timeout(budget.AGENT_CONNECT):
                _, stderr = await process.communicate()
        except TimeoutError:
            with contextlib.suppress(ProcessLookupError):
                process.kill()
            raise SandboxError(
                f"{what} of sandbox {sandbox_id} did not answer within {budget.AGENT_CONNECT:g} s: the sandbox may "
                "be out of processes or memory; try again, or close the session."
            ) from None
        connection = _received_socket(ours, families)
        if connection is None:
            detail = stderr.decode("utf-8", "replace").strip()[-1000:] or f"exit status {process.returncode}"
            raise SandboxError(f"{what} of sandbox {sandbox_id} could not be reached: {detail}")
        return connection
    finally:
        ours.close()


def _received_socket(ours: socket.socket, families: tuple[int, ...]) -> socket.socket | None:
    """The descriptor the helper sent, if it is a stream socket of one of `families` (the first such one)."""
    ours.setblocking(False)
    try:
        _, fds, _, _ = socket.recv_fds(ours, 16, 4)
    except (BlockingIOError, OSError):
        return None
    received = None
    for fd in fds:
        try:
            if received is None and stat.S_ISSOCK(os.fstat(fd).st_mode):
                candidate = socket.socket(fileno=fd)
                if candidate.type == socket.SOCK_STREAM and candidate.family in families:
                    received = candidate
                    continue
                candidate.detach()
        except OSError:
            pass
        os.close(fd)
    return received
