"""The server's end of one connection to a sandbox's agent: requests answered by id, and the output of the
processes it follows routed to their subscriptions.

The agent is as trustworthy as the code in its sandbox, so the channel trusts none of what it says: frames are
bounded by `wire`, replies must answer a request this side made, a subscription holds a bounded number of frames
(an agent that floods one is cut off), and when the connection breaks every waiter learns it at once.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
from typing import Any, Protocol

from ..errors import SandboxError
from . import wire

logger = logging.getLogger(__name__)

MAX_QUEUED_FRAMES = 4096
"""Frames one subscription may hold unread; an agent that sends more than it was asked for is cut off."""
EVENTS = ("out", "tick", "figure", "exit")


class FrameWriter(Protocol):
    """Where frames go: a socket's `asyncio.StreamWriter`, or a WebSocket's messages."""

    def write(self, data: bytes, /) -> None: ...

    async def drain(self) -> None: ...

    def close(self) -> None: ...

    async def wait_closed(self) -> None: ...


Connection = tuple[wire.ByteStream, FrameWriter]


class AgentLost(SandboxError):
    """The connection to the sandbox's agent broke (the agent was killed or replaced, or the sandbox ended)."""

    code = "sandbox_error"


class AgentSilent(AgentLost):
    """The agent did not answer a request in time: alive or not, it said nothing (a starved sandbox, say)."""


class AgentRefused(SandboxError):
    """The agent answered a request with an error frame."""

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason


class AgentChannel:
    """One framed connection; any number of requests and followed processes at once."""

    def __init__(self, reader: wire.ByteStream, writer: FrameWriter, *, name: str) -> None:
        self.name = name
        self._reader = reader
        self._writer = writer
        self._ids = itertools.count(1)
        self._pending: dict[int, asyncio.Future[tuple[wire.Header, bytes]]] = {}
        self._subscriptions: dict[str, asyncio.Queue[tuple[wire.Header, bytes]]] = {}
        self._allowance: dict[str, int] = {}
        """Payload bytes each subscription may still receive."""
        self._send_lock = asyncio.Lock()
        self._failure: str | None = None
        self.misbehaved = False
        """Whether the agent sent something no genuine agent sends: the next connection replaces it."""
        self._reading = asyncio.create_task(self._read_forever())

    @classmethod
    async def open(
        cls, reader: wire.ByteStream, writer: FrameWriter, *, name: str, program: str, timeout: float
    ) -> AgentChannel:
        """A channel to an agent that says it runs `program` (the digest of the files this package ships);
        `AgentMismatch` when it runs something else."""
        channel = cls(reader, writer, name=name)
        try:
            hello, _ = await channel.request({"op": "hello", "v": wire.VERSION}, timeout=timeout)
        except BaseException:
            await channel.aclose()
            raise
        if hello.get("v") != wire.VERSION or hello.get("program") != program:
            await channel.aclose()
            raise AgentMismatch(f"the agent of {name} runs another program (version {hello.get('v')!r})")
        return channel

    @property
    def closed(self) -> bool:
        return self._failure is not None

    async def request(self, header: wire.Header, payload: bytes = b"", *, timeout: float) -> tuple[wire.Header, bytes]:
        """Send a request and wait up to `timeout` seconds for its answer."""
        number = next(self._ids)
        reply: asyncio.Future[tuple[wire.Header, bytes]] = asyncio.get_running_loop().create_future()
        self._pending[number] = reply
        try:
            try:
                await self.send({**header, "r": number}, payload)
            except AgentLost:
                if reply.done():
                    reply.exception()  # the same failure, raised here instead
                raise
            async with asyncio.timeout(timeout):
                return await reply
        except TimeoutError:
            raise AgentSilent(f"the agent of {self.name} did not answer within {timeout:g} s") from None
        finally:
            self._pending.pop(number, None)

    async def send(self, header: wire.Header, payload: bytes = b"") -> None:
        self._raise_if_closed()
        frame = wire.encode(header, payload)
        async with self._send_lock:
            try:
                self._writer.write(frame)
                await self._writer.drain()
            except (ConnectionError, RuntimeError) as error:
                self._fail(f"the connection to the agent of {self.name} broke ({error})")
                raise AgentLost(self._failure or "the connection broke") from None

    def subscribe(self, *, max_bytes: int) -> tuple[str, asyncio.Queue[tuple[wire.Header, bytes]]]:
        """A new attachment's id and the frames the agent sends for it from now on (out, tick, figure, exit; a
        final `lost` if the channel breaks), `max_bytes` of payload at most in all: what was asked for."""
        self._raise_if_closed()
        attachment = f"a{next(self._ids)}"
        queue: asyncio.Queue[tuple[wire.Header, bytes]] = asyncio.Queue()
        self._subscriptions[attachment] = queue
        self._allowance[attachment] = max_bytes
        return attachment, queue

    def reject(self, reason: str) -> AgentLost:
        """End the channel because its agent said something no genuine agent says; the error to raise."""
        self.misbehaved = True
        return self.abandon(f"the agent of {self.name} broke the protocol: {reason}")

    def abandon(self, reason: str) -> AgentLost:
        """End the channel for `reason` (it went silent, say), waking every waiter; the error to raise. Unless it
        misbehaved, the next connection may find the same agent, with its processes, alive and well."""
        self._fail(reason)
        return AgentLost(self._failure or reason)

    def unsubscribe(self, attachment: str) -> None:
        self._subscriptions.pop(attachment, None)
        self._allowance.pop(attachment, None)

    async def aclose(self) -> None:
        self._fail(f"the channel to the agent of {self.name} was closed")
        self._reading.cancel()
        with contextlib.suppress(BaseException):
            await self._reading
        with contextlib.suppress(Exception):
            self._writer.close()
            await self._writer.wait_closed()

    def _raise_if_closed(self) -> None:
        if self._failure is not None:
            raise AgentGone(self._failure)

    async def _read_forever(self) -> None:
        try:
            while True:
                header, payload = await wire.read_frame(self._reader)
                self._route(header, payload)
        except asyncio.IncompleteReadError:
            self._fail(f"the agent of {self.name} ended the connection")
        except wire.FrameError as error:
            self.misbehaved = True
            self._fail(f"the agent of {self.name} broke the protocol: {error}")
        except (ConnectionError, OSError) as error:
            self._fail(f"the connection to the agent of {self.name} broke: {error}")
        except asyncio.CancelledError:
            raise
        except Exception as error:  # a bug here must not leave waiters hanging
            logger.exception("reading from the agent of %s failed", self.name)
            self._fail(f"reading from the agent of {self.name} failed: {error}")

    def _route(self, header: wire.Header, payload: bytes) -> None:
        number = header.get("r")
        if header["op"] in EVENTS:
            attachment = header.get("a")
            if not isinstance(attachment, str) or attachment not in self._subscriptions:
                return  # for an attachment this side ended a moment ago
            queue = self._subscriptions[attachment]
            self._allowance[attachment] -= len(payload)
            if queue.qsize() >= MAX_QUEUED_FRAMES or self._allowance[attachment] < 0:
                raise wire.FrameError(f"more about {header.get('p')!r} than was asked for")
            queue.put_nowait((header, payload))
            return
        reply = self._pending.get(number) if isinstance(number, int) and not isinstance(number, bool) else None
        if reply is None or reply.done():
            return  # an answer to nothing this side asked, or asked and given up on
        if header["op"] == "error":
            reply.set_exception(
                AgentRefused(str(header.get("code", "error")), str(header.get("message", "refused"))[:2000])
            )
        else:
            reply.set_result((header, payload))

    def _fail(self, reason: str) -> None:
        if self._failure is not None:
            return
        self._failure = reason
        for reply in self._pending.values():
            if not reply.done():
                reply.set_exception(AgentLost(reason))
        for queue in self._subscriptions.values():
            queue.put_nowait(({"op": "lost", "message": reason}, b""))


class AgentGone(AgentLost):
    """The channel had broken before this request was sent: nothing of it reached the agent."""


class AgentMismatch(AgentLost):
    """The agent found runs another program or protocol version than this server ships."""


def check(header: wire.Header, name: str, kind: type | tuple[type, ...], default: Any = ...) -> Any:
    """A field of an agent's frame, checked; a malformed one ends the follow with `AgentLost`."""
    try:
        return wire.field(header, name, kind, default)
    except wire.FrameError as error:
        raise AgentLost(f"the agent sent a malformed frame: {error}") from None
