"""How the local provider reaches a sandbox's agent: one connection per sandbox and server process.

The server starts `agent.py connect` inside the sandbox (joining its holder, like any command), with a Unix
socket as its stdin. Inside, it connects to the agent's socket (starting the agent if none answers) and sends
the connected descriptor back over that stdin; then it exits. The socket's path is resolved inside the
sandbox, so whatever the sandbox put there can only lead to something of its own, and the host never follows a
path, link or socket the sandbox controls: it only receives one descriptor, which it checks is a socket.
Connections to the sandbox's ports come back the same way (see `port_connector`).
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
) -> socket.socket:
    """The connected Unix stream socket that `helper`, started in the sandbox with a socket as its stdin, hands
    back."""
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
        connection = _received_socket(ours, (socket.AF_UNIX,))
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
    return received_socket(fds, families)


def received_socket(fds: list[int], families: tuple[int, ...]) -> socket.socket | None:
    """The first of the descriptors a sandbox's process sent that is a stream socket of one of `families`; the
    others are closed."""
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
