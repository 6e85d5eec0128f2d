"""Two connected sockets joined both ways, once the proxy has decided: the kernel moves the bytes (`splice(2)`
through a pipe per direction), so a proxied download costs little more than a direct one. An end of file on one
side half-closes the other; a connection silent both ways for the idle time is closed."""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import os
import socket

_CHUNK = 1024 * 1024
_FLAGS = os.SPLICE_F_MOVE | os.SPLICE_F_NONBLOCK


class Pipe:
    """Joins two connected, non-blocking sockets; `run` returns when both ways are done. Closes no socket."""

    def __init__(self, idle_timeout: float) -> None:
        self.loop = asyncio.get_running_loop()
        self.seen = self.loop.time()
        self._idle = idle_timeout
        self._ways: list[asyncio.Future[None]] = []

    async def run(self, a: socket.socket, b: socket.socket, first: bytes = b"", answer: bytes = b"") -> None:
        """Join `a` and `b`; `first` goes to `b` and `answer` to `a` before anything else (what the handshake
        read past its end, and its reply)."""
        if answer:
            await self.loop.sock_sendall(a, answer)
        if first:
            await self.loop.sock_sendall(b, first)
        self._ways = [asyncio.ensure_future(self._carry(a, b)), asyncio.ensure_future(self._carry(b, a))]
        try:
            pending = set(self._ways)
            while pending:
                done, pending = await asyncio.wait(pending, timeout=self._idle / 4)
                if any(not way.cancelled() and way.exception() is not None for way in done):
                    break
                if self.loop.time() - self.seen > self._idle:
                    break
        finally:
            self.abort()
            await asyncio.gather(*self._ways, return_exceptions=True)

    def abort(self) -> None:
        for way in self._ways:
            way.cancel()

    async def _carry(self, source: socket.socket, target: socket.socket) -> None:
        """Move everything from `source` to `target` until `source` ends, then half-close `target`."""
        read_end, write_end = os.pipe2(os.O_NONBLOCK | os.O_CLOEXEC)
        try:
            with contextlib.suppress(OSError):  # a larger pipe means fewer calls; the default 64 KiB works too
                fcntl.fcntl(write_end, fcntl.F_SETPIPE_SZ, _CHUNK)
            while True:
                try:
                    moved = os.splice(source.fileno(), write_end, _CHUNK, flags=_FLAGS)
                except BlockingIOError:
                    await self._ready(source.fileno(), writing=False)
                    continue
                if moved == 0:
                    with contextlib.suppress(OSError):
                        target.shutdown(socket.SHUT_WR)
                    return
                self.seen = self.loop.time()
                while moved:
                    try:
                        moved -= os.splice(read_end, target.fileno(), moved, flags=_FLAGS)
                    except BlockingIOError:
                        await self._ready(target.fileno(), writing=True)
        finally:
            os.close(read_end)
            os.close(write_end)

    async def _ready(self, fd: int, *, writing: bool) -> None:
        ready: asyncio.Future[None] = self.loop.create_future()

        def wake() -> None:
            if not ready.done():
                ready.set_result(None)

        if writing:
            self.loop.add_writer(fd, wake)
        else:
            self.loop.add_reader(fd, wake)
        try:
            await ready
        finally:
            if writing:
                self.loop.remove_writer(fd)
            else:
                self.loop.remove_reader(fd)
