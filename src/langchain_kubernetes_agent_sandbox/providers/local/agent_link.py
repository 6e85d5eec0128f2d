"""How the local provider reaches a sandbox's agent: one connection per sandbox and server process.

The server starts `agent.py connect` inside the sandbox (joining its holder, like any command), with a Unix
socket as its stdin. Inside, it connects to the agent's socket (starting the agent if none answers) and sends
the connected descriptor back over that stdin; then it exits. The socket's path is resolved inside the
sandbox, so whatever the sandbox put there can only lead to something of its own, and the host never follows a
path, link or socket the sandbox controls: it only receives one descriptor, which it checks is a socket.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import socket
import stat
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Sequence

from ...engine import budget, program
from ...engine.channel import AgentChannel, AgentLost
from ...errors import SandboxError

MAX_CHANNELS = 256
"""Connections a provider keeps open (least recently used closed first): one per sandbox in use."""

Launch = Callable[[Sequence[str], socket.socket], Awaitable[asyncio.subprocess.Process]]
"""Starts a command inside the sandbox with the given socket as its stdin."""


class AgentLinks:
    """The provider's open channels, by sandbox id; bounded, and each made at most once at a time."""

    def __init__(self) -> None:
        self._channels: OrderedDict[str, tuple[AgentChannel, object]] = OrderedDict()
        self._connecting: dict[str, asyncio.Lock] = {}

    async def channel(
        self,
        sandbox_id: str,
        install: Callable[[], Awaitable[None]],
        launch: Launch,
        *,
        generation: Callable[[], object],
    ) -> AgentChannel:
        """The open channel to the sandbox's agent, or a new one. `generation()` names what the agent lives in (the
        sandbox's holder): when it changed, the agent ended with the old one, whether or not the channel noticed."""
        existing = self._usable(sandbox_id, generation())
        if existing is not None:
            return existing
        lock = self._connecting.setdefault(sandbox_id, asyncio.Lock())
        async with lock:
            existing = self._usable(sandbox_id, generation())
            if existing is not None:
                return existing
            previous = self._channels.get(sandbox_id, (None, None))[0]
            broken = previous if previous is not None and previous.closed else None
            try:
                channel = await _connect(sandbox_id, install, launch, broken=broken)
            finally:
                self._connecting.pop(sandbox_id, None)
            if previous is not None:
                await previous.aclose()
            self._channels[sandbox_id] = (channel, generation())
            while len(self._channels) > MAX_CHANNELS:
                _, (oldest, _) = self._channels.popitem(last=False)
                await oldest.aclose()
            return channel

    def _usable(self, sandbox_id: str, generation: object) -> AgentChannel | None:
        channel, made_in = self._channels.get(sandbox_id, (None, None))
        if channel is None or channel.closed or made_in != generation:
            return None
        self._channels.move_to_end(sandbox_id)
        return channel

    async def forget(self, sandbox_id: str) -> None:
        channel, _ = self._channels.pop(sandbox_id, (None, None))
        if channel is not None:
            await channel.aclose()

    async def aclose(self) -> None:
        for sandbox_id in list(self._channels):
            await self.forget(sandbox_id)


async def _connect(
    sandbox_id: str, install: Callable[[], Awaitable[None]], launch: Launch, *, broken: AgentChannel | None = None
) -> AgentChannel:
    """A channel to the sandbox's agent. An agent that runs another program than this package's (an older version,
    or something the sandbox put in its place), that broke the protocol on the `broken` channel before, or that is
    the very process whose connection broke (alive, yet failing) is asked to end and left behind, and this
    package's started."""
    await install()
    if broken is None or not broken.misbehaved:
        try:
            channel = await _open(sandbox_id, launch)
        except AgentLost:
            pass  # another program, or one that cannot even say hello: replaced below
        else:
            if broken is None or channel.agent_pid != broken.agent_pid:
                return channel
            await channel.aclose()
    with contextlib.suppress(SandboxError):
        stale = await _open(sandbox_id, launch, check=False)
        with contextlib.suppress(SandboxError):
            await stale.send({"op": "shutdown"})
        await stale.aclose()
    await install()
    return await _open(sandbox_id, launch, replace=True)


async def _open(sandbox_id: str, launch: Launch, *, check: bool = True, replace: bool = False) -> AgentChannel:
    ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        with theirs:
            process = await launch(
                ["/bin/sh", "-c", 'exec python3 -u -E -s -S "$0/agent.py" connect "$0" "$@"', program.AGENT_DIR]
                + (["replace"] if replace else []),
                theirs,
            )
        try:
            async with asyncio.timeout(budget.AGENT_CONNECT):
                _, stderr = await process.communicate()
        except TimeoutError:
            with contextlib.suppress(ProcessLookupError):
                process.kill()
            raise SandboxError(
                f"The agent of sandbox {sandbox_id} did not start within {budget.AGENT_CONNECT:g} s: the sandbox may "
                "be out of processes or memory; try again, or close the session."
            ) from None
        connection = _received_socket(ours)
        if connection is None:
            detail = stderr.decode("utf-8", "replace").strip()[-1000:] or f"exit status {process.returncode}"
            raise SandboxError(f"The agent of sandbox {sandbox_id} could not be reached: {detail}")
    finally:
        ours.close()
    reader, writer = await asyncio.open_unix_connection(sock=connection)
    name = f"sandbox {sandbox_id}"
    if not check:
        return AgentChannel(reader, writer, name=name)
    return await AgentChannel.open(reader, writer, name=name, program=program.DIGEST, timeout=budget.AGENT_REQUEST)


def _received_socket(ours: socket.socket) -> socket.socket | None:
    """The descriptor the connect helper sent, if it sent exactly one and it is a stream socket."""
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
                if candidate.type == socket.SOCK_STREAM and candidate.family == socket.AF_UNIX:
                    received = candidate
                    continue
                candidate.detach()
        except OSError:
            pass
        os.close(fd)
    return received
