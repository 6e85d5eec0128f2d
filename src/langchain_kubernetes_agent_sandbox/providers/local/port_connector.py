"""Connections to the ports of local sandboxes, for previews: one helper process per sandbox opens them.

Starting a process in a sandbox for each connection costs tens of milliseconds, and a browser opens several
connections per page. So the first connection to any port of a sandbox starts `CONNECTOR` in it (in its network
namespace, like any command), with one end of a SOCK_SEQPACKET socket pair as its stdin, and it stays: each message
the server sends names a port, each answer is the connected socket (passed back as a descriptor, checked to be a
TCP stream socket) or a line saying why there is none. The connection is made inside the sandbox's network
namespace, where it stays, so the server talks to the sandbox's own loopback and to nothing else, with no process
of the sandbox's relaying the bytes. The helper is the sandbox's own process, as trustworthy as its code: its
answers are bounded and checked, and a helper that ended or says nothing is replaced, once per connection asked
for. It ends when the server closes its end, or with the sandbox.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
from collections.abc import Sequence

from ...engine import budget
from ...errors import SandboxError
from .agent_link import Launch, received_socket

CONNECTOR = """import socket
server = socket.socket(fileno=0)
while True:
    request = server.recv(16)
    if not request:
        break
    port = int(request)
    for host in ("127.0.0.1", "::1"):
        try:
            connection = socket.create_connection((host, port), timeout=5)
            break
        except OSError as error:
            failure = error
    else:
        server.send(f"nothing listens on port {port} in the sandbox ({failure.strerror or failure})".encode())
        continue
    socket.send_fds(server, [b"c"], [connection.fileno()])
    connection.close()
"""
"""Run with `python3 -c CONNECTOR` in the sandbox, its stdin a SOCK_SEQPACKET socket: for each port asked for,
connects to it on the sandbox's loopback (IPv4, then IPv6) and sends the connected socket back."""
TCP_FAMILIES = (socket.AF_INET, socket.AF_INET6)
MAX_ANSWER = 512
"""Bytes of a refusal kept for the error message."""


class _Lost(Exception):
    """The helper ended, or did not answer in time."""


class _Connector:
    def __init__(self, process: asyncio.subprocess.Process, ours: socket.socket) -> None:
        self.process = process
        self.ours = ours
        self.interrupted = False
        """Whether an answer may still be on its way for a question whose asker went (cancelled): the next
        answer could be that one, for another port, so this helper is not asked again."""

    async def ask(self, port: int) -> tuple[bytes, list[int]]:
        """The helper's answer for `port`: its text, and the descriptors it passed."""
        loop = asyncio.get_running_loop()
        self.interrupted = True
        try:
            async with asyncio.timeout(budget.AGENT_CONNECT):
                await loop.sock_sendall(self.ours, str(port).encode())
                while True:
                    await _readable(self.ours)
                    with contextlib.suppress(BlockingIOError):
                        message, fds, _, _ = socket.recv_fds(self.ours, MAX_ANSWER, 4)
                        break
        except (TimeoutError, OSError) as error:
            raise _Lost(str(error) or "no answer in time") from None
        self.interrupted = False
        if not message and not fds:
            raise _Lost("it ended")
        return message, fds

    async def close(self) -> None:
        self.ours.close()
        with contextlib.suppress(ProcessLookupError):
            self.process.kill()
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(budget.END_OF_RUN):
                await self.process.communicate()


class PortConnectors:
    """The helper of each sandbox of this provider that opened a connection to one of its ports."""

    def __init__(self) -> None:
        self._connectors: dict[str, _Connector] = {}
        self._locks: dict[str, asyncio.Lock] = {}

    async def connect(self, sandbox_id: str, port: int, launch: Launch, argv: Sequence[str]) -> socket.socket:
        """A TCP connection to loopback port `port` inside the sandbox (`SandboxError` when nothing listens
        there), made by its helper, which `launch` starts with `argv` where none runs."""
        async with self._locks.setdefault(sandbox_id, asyncio.Lock()):
            try:
                message, fds = await self._ask(sandbox_id, port, launch, argv)
            except _Lost:  # a helper of the sandbox's last holder, maybe: once more with a new one
                await self.close(sandbox_id)
                try:
                    message, fds = await self._ask(sandbox_id, port, launch, argv)
                except _Lost as lost:
                    await self.close(sandbox_id)
                    raise SandboxError(
                        f"The port connector of sandbox {sandbox_id} did not answer ({lost}): the sandbox may be out "
                        "of processes or memory; try again, or close the session."
                    ) from None
        connection = received_socket(fds, TCP_FAMILIES)
        if connection is not None:
            return connection
        said = "".join(c if c.isprintable() else " " for c in message.decode("utf-8", "replace")).strip()
        detail = "its connector sent something other than a TCP connection" if fds else said
        raise SandboxError(f"Port {port} of sandbox {sandbox_id} could not be reached: {detail}")

    async def _ask(self, sandbox_id: str, port: int, launch: Launch, argv: Sequence[str]) -> tuple[bytes, list[int]]:
        connector = self._connectors.get(sandbox_id)
        if connector is not None and connector.interrupted:
            await self.close(sandbox_id)
            connector = None
        if connector is None:
            connector = self._connectors[sandbox_id] = await _start(launch, argv)
        return await connector.ask(port)

    async def close(self, sandbox_id: str) -> None:
        """End the sandbox's helper, if one runs (its sandbox stops, or it stopped answering)."""
        connector = self._connectors.pop(sandbox_id, None)
        if connector is not None:
            await connector.close()

    async def aclose(self) -> None:
        for sandbox_id in list(self._connectors):
            await self.close(sandbox_id)


async def _start(launch: Launch, argv: Sequence[str]) -> _Connector:
    ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
    ours.setblocking(False)
    try:
        with theirs:
            process = await launch(argv, theirs)
    except BaseException:
        ours.close()
        raise
    return _Connector(process, ours)


async def _readable(connection: socket.socket) -> None:
    loop = asyncio.get_running_loop()
    ready: asyncio.Future[None] = loop.create_future()

    def readable() -> None:
        if not ready.done():
            ready.set_result(None)

    loop.add_reader(connection.fileno(), readable)
    try:
        await ready
    finally:
        loop.remove_reader(connection.fileno())
