"""The execution engine's agent channel over sandboxd's gRPC `ProcessService`.

The client's sandboxd configs give a gRPC channel to the pod (in-cluster or through a pod port-forward) and use only
the unary `Execute`. The agent channel needs a process whose output arrives while it is written and that takes
input: `Start` (server-streaming stdout, stderr and the exit) runs `agent.py pipe`, which relays a connection to the
pod's agent over its stdin and stdout; `WriteStdin` carries the server's frames to it. The agent itself is a daemon
of its own that outlives the relay, so jobs, the Python kernel and detached processes are the agent's as on every
other channel, and a restarted server attaches to them again.

What the pod sends is untrusted: the relay's stderr is kept only as a bounded tail for error messages, and the
frames it relays are checked by the channel (`engine.channel`).
"""

from __future__ import annotations

import asyncio
from typing import Any

import grpc

from ...engine import budget
from ...engine.channel import Connection
from ...errors import TimedOutError
from . import sandboxd_proto as proto
from .agent import AgentUnavailable, install_argv

MAX_STDERR_TAIL = 2000
"""Bytes of the relay's stderr kept for the message when it ends early."""
MAX_REASON_CHARS = 500

_START = proto.SERVICE + "/Start"
_WRITE_STDIN = proto.SERVICE + "/WriteStdin"
_SEND_SIGNAL = proto.SERVICE + "/SendSignal"


class ProcessPipe:
    """A process started through `Start`, as a byte stream: its stdout in, `WriteStdin` out."""

    def __init__(self, channel: grpc.aio.Channel, call: Any, process_id: int, *, name: str) -> None:
        self._channel = channel
        self._call = call
        self.process_id = process_id
        self._name = name
        self._received = bytearray()
        self._unsent = bytearray()
        self._stderr = bytearray()
        self._exit_code: int | None = None
        self._ended = False
        self._write = channel.unary_unary(
            _WRITE_STDIN,
            request_serializer=proto.WriteStdinRequest.SerializeToString,
            response_deserializer=proto.WriteStdinResponse.FromString,
        )

    def _end_reason(self) -> str:
        """Why the relay's output ended, for the message: its exit status and the tail of its stderr, printable."""
        tail = "".join(c if c.isprintable() else " " for c in self._stderr.decode("utf-8", "replace")).strip()
        status = "" if self._exit_code is None else f" with exit status {self._exit_code}"
        return f"the agent's relay in {self._name} ended{status}" + (f": {tail[-MAX_REASON_CHARS:]}" if tail else "")

    async def readexactly(self, n: int, /) -> bytes:
        while len(self._received) < n:
            if self._ended:
                if self._stderr or self._exit_code:
                    raise ConnectionError(self._end_reason())
                raise asyncio.IncompleteReadError(bytes(self._received), n)
            await self._next_event()
        data = bytes(self._received[:n])
        del self._received[:n]
        return data

    async def _next_event(self) -> None:
        try:
            event = await self._call.read()
        except grpc.aio.AioRpcError as error:
            self._ended = True
            raise ConnectionError(f"sandboxd's stream of {self._name} broke: {error.code().name}") from None
        if event is grpc.aio.EOF:
            self._ended = True
            return
        kind = event.WhichOneof("event")
        if kind == "stdout":
            self._received += event.stdout
        elif kind == "stderr":
            self._stderr += event.stderr
            del self._stderr[:-MAX_STDERR_TAIL]
        elif kind == "exit":
            self._exit_code = event.exit.exit_code
            self._ended = True

    def write(self, data: bytes, /) -> None:
        self._unsent += data

    async def drain(self) -> None:
        if not self._unsent:
            return
        data = bytes(self._unsent)
        self._unsent.clear()
        request = proto.WriteStdinRequest(process_id=self.process_id, input=data)
        try:
            await self._write(request, timeout=budget.AGENT_REQUEST)
        except grpc.aio.AioRpcError as error:
            raise ConnectionError(f"sandboxd refused input for {self._name}: {error.code().name}") from None

    def close(self) -> None:
        self._ended = True
        self._call.cancel()  # sandboxd ends the relay with its stream; the agent lives on

    async def wait_closed(self) -> None:
        return None


async def start(channel: grpc.aio.Channel, argv: list[str], *, name: str) -> ProcessPipe:
    """`argv` started through `Start`, once sandboxd said its process id."""
    begin = channel.unary_stream(
        _START,
        request_serializer=proto.StartRequest.SerializeToString,
        response_deserializer=proto.StartResponse.FromString,
    )
    call = begin(proto.StartRequest(config=proto.ProcessConfig(command=argv)))
    try:
        async with asyncio.timeout(budget.AGENT_CONNECT):
            first = await call.read()
    except TimeoutError:
        call.cancel()
        raise TimedOutError(
            f"sandboxd of {name} did not start the agent's relay within {budget.AGENT_CONNECT:g} s: the pod may be "
            "overloaded; try again."
        ) from None
    except grpc.aio.AioRpcError as error:
        call.cancel()
        raise AgentUnavailable(f"sandboxd of {name} did not start the agent's relay ({error.code().name})") from None
    if first is grpc.aio.EOF or first.WhichOneof("event") != "init":
        call.cancel()
        raise AgentUnavailable(f"sandboxd of {name} answered Start without a process id")
    return ProcessPipe(channel, call, first.init.process_id, name=name)


async def agent_connection(channel: grpc.aio.Channel, replace: bool, *, name: str) -> Connection:
    """A connection to the pod's agent through a relay process, installing and starting the agent where needed."""
    pipe = await start(channel, install_argv("pipe", *(["replace"] if replace else [])), name=name)
    return pipe, pipe
