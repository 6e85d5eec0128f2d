"""Two connected sockets joined both ways, once the proxy has decided: the bytes go from one transport straight to
the other (no stream buffers in between), each side's reading pauses while the other cannot take more, an end of
file on one side half-closes the other, and a connection silent both ways for the idle time is closed."""

from __future__ import annotations

import asyncio
import socket


class _Half(asyncio.Protocol):
    """One socket's side: what it receives goes to the peer's transport."""

    def __init__(self, pipe: Pipe) -> None:
        self._pipe = pipe
        self.transport: asyncio.Transport | None = None
        self.peer: _Half | None = None
        self.ended = False

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport

    def data_received(self, data: bytes) -> None:
        self._pipe.seen = self._pipe.loop.time()
        if self.peer is not None and self.peer.transport is not None:
            self.peer.transport.write(data)

    def eof_received(self) -> bool:
        self.ended = True
        peer = self.peer.transport if self.peer is not None else None
        if peer is None or self.peer is None or self.peer.ended or not peer.can_write_eof():
            self._pipe.close()
            return False
        peer.write_eof()
        return True  # the other way may still carry the answer

    def connection_lost(self, exc: Exception | None) -> None:
        self._pipe.close()

    def pause_writing(self) -> None:
        # This side's buffer is full: stop reading what would be written into it.
        if self.peer is not None and self.peer.transport is not None:
            self.peer.transport.pause_reading()

    def resume_writing(self) -> None:
        if self.peer is not None and self.peer.transport is not None and not self.peer.transport.is_closing():
            self.peer.transport.resume_reading()


class Pipe:
    """Joins `a` and `b` (connected, non-blocking sockets); `run` returns when both are closed."""

    def __init__(self, idle_timeout: float) -> None:
        self.loop = asyncio.get_running_loop()
        self.seen = self.loop.time()
        self._idle = idle_timeout
        self._closed = self.loop.create_future()
        self._halves: list[_Half] = []

    async def run(self, a: socket.socket, b: socket.socket, first: bytes = b"", answer: bytes = b"") -> None:
        """Join the sockets; `first` goes to `b` and `answer` to `a` before anything else (what the handshake
        read past its end, and its reply)."""
        one, two = _Half(self), _Half(self)
        one.peer, two.peer = two, one
        self._halves = [one, two]
        to_a, _ = await self.loop.connect_accepted_socket(lambda: one, sock=a)
        try:
            to_b, _ = await self.loop.connect_accepted_socket(lambda: two, sock=b)
        except OSError:
            to_a.close()
            raise
        if answer:
            to_a.write(answer)
        if first:
            to_b.write(first)
        while not self._closed.done():
            try:
                await asyncio.wait_for(asyncio.shield(self._closed), self._idle / 4)
            except TimeoutError:
                if self.loop.time() - self.seen > self._idle:
                    self.close()

    def close(self) -> None:
        for half in self._halves:
            if half.transport is not None:
                half.transport.close()
        if not self._closed.done():
            self._closed.set_result(None)

    def abort(self) -> None:
        for half in self._halves:
            if half.transport is not None:
                half.transport.abort()
        if not self._closed.done():
            self._closed.set_result(None)
