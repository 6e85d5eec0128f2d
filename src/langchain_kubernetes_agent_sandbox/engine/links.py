"""A provider's open channels to its sandboxes' agents: one per sandbox and server process, made at most once at a
time, replaced when the agent changed or misbehaved.

How a connection is made is the provider's (a socket handed over by a helper in the sandbox, a WebSocket through
the cluster's router); what to do with it is the same everywhere, and is here.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import OrderedDict
from collections.abc import Awaitable, Callable

from ..errors import SandboxError
from . import budget, program
from .channel import AgentChannel, AgentLost, AgentSilent, Connection

logger = logging.getLogger(__name__)

MAX_CHANNELS = 256
"""Connections a provider keeps open (least recently used closed first): one per sandbox in use."""

Connect = Callable[[bool], Awaitable[Connection]]
"""Opens a connection to the sandbox's agent, installing and starting this package's agent when none answers;
with True, whatever answers now is left behind and a new agent started in its place."""


class AgentLinks:
    """The provider's open channels, by sandbox id; bounded, and each made at most once at a time."""

    def __init__(self) -> None:
        self._channels: OrderedDict[str, tuple[AgentChannel, object]] = OrderedDict()
        self._connecting: dict[str, asyncio.Lock] = {}
        self._preparing: dict[str, asyncio.Task[object]] = {}

    def open_channel(self, sandbox_id: str, generation: object = None) -> AgentChannel | None:
        """The sandbox's channel if one is open now, without waiting for anything."""
        return self._usable(sandbox_id, generation)

    def prepare(self, sandbox_id: str, make: Callable[[], Awaitable[object]]) -> None:
        """Run `make` (which opens the sandbox's channel) in the background unless it already runs: callers go
        on without the agent meanwhile, and later ones find it open. Its failure is left for `make` to record."""
        if sandbox_id in self._preparing:
            return
        task = asyncio.ensure_future(make())
        self._preparing[sandbox_id] = task

        def done(finished: asyncio.Task[object]) -> None:
            self._preparing.pop(sandbox_id, None)
            if not finished.cancelled() and finished.exception() is not None:
                logger.info("the agent of sandbox %s could not be prepared: %s", sandbox_id, finished.exception())

        task.add_done_callback(done)

    async def channel(self, sandbox_id: str, connect: Connect, *, generation: Callable[[], object]) -> AgentChannel:
        """The open channel to the sandbox's agent, or a new one. `generation()` names what the agent lives in (the
        sandbox's holder, say): when it changed, the agent ended with the old one, whether or not the channel
        noticed."""
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
                channel = await _connect(f"sandbox {sandbox_id}", connect, broken=broken)
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
        preparing = self._preparing.pop(sandbox_id, None)
        if preparing is not None:
            preparing.cancel()
            with contextlib.suppress(BaseException):
                await preparing
        channel, _ = self._channels.pop(sandbox_id, (None, None))
        if channel is not None:
            await channel.aclose()

    async def aclose(self) -> None:
        for sandbox_id in {*self._preparing, *self._channels}:
            await self.forget(sandbox_id)


async def _connect(name: str, connect: Connect, *, broken: AgentChannel | None) -> AgentChannel:
    """A channel to the sandbox's agent. An agent that runs another program than this package's (an older version,
    or something the sandbox put in its place), that broke the protocol on the `broken` channel before, or that
    cannot say hello on a first connection, is asked to end and left behind, and this package's started.

    After a `broken` channel that did not misbehave, the agent found is kept if it answers: only the connection
    broke (a relay or proxy ended, a stalled one was abandoned), and the agent's processes live on. One that stays
    silent then is not replaced, since replacing it would end them: the caller gets `AgentSilent`."""
    if broken is None or not broken.misbehaved:
        try:
            return await _open(name, connect, replace=False)
        except AgentSilent:
            if broken is not None:
                raise
        except AgentLost:
            pass  # another program, or one that cannot even say hello: replaced below
    with contextlib.suppress(SandboxError):
        stale = AgentChannel(*await connect(False), name=name)
        with contextlib.suppress(SandboxError):
            await stale.send({"op": "shutdown"})
        await stale.aclose()
    return await _open(name, connect, replace=True)


async def _open(name: str, connect: Connect, *, replace: bool) -> AgentChannel:
    reader, writer = await connect(replace)
    return await AgentChannel.open(reader, writer, name=name, program=program.DIGEST, timeout=budget.AGENT_REQUEST)
