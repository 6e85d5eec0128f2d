"""The egress proxies of one server: a unix socket per sandbox with egress, served from a thread of their own.

A thread, not the server's event loop: proxied bytes then never queue behind tool calls, and the proxies work
whichever loop (or none) the provider's caller runs. A socket is opened again when a server restarts, at the
same path, so a sandbox that outlived its server finds its way out again with its next command.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import os
import socket
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol, runtime_checkable

from . import relay
from .policy import EgressPolicy
from .proxy import EgressProxy, Observer, ProxyLimits, Resolver, system_resolver

_OPEN_TIMEOUT = 10.0
BACKLOG = 256


@runtime_checkable
class EgressObservable(Protocol):
    """A provider whose egress decisions can be watched (for /metrics)."""

    def observe_egress(self, observer: Observer) -> None: ...


class EgressService:
    """Opens and closes the proxies; every method may be called from any thread."""

    def __init__(
        self,
        *,
        resolver: Resolver = system_resolver,
        limits: ProxyLimits | None = None,
        owner: tuple[int, int] | None = None,
    ) -> None:
        """`owner` (uid, gid) gets the sockets, mode 0600: the sandbox user, where the server drops to one."""
        self.limits = limits or ProxyLimits()
        self.observers: list[Observer] = []
        self._resolver = resolver
        self._owner = owner
        self._servers: dict[str, _Served] = {}
        self._taking: set[asyncio.Future[None]] = set()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()

    async def open(self, sandbox: str, path: Path, policy: EgressPolicy) -> None:
        """Serve `sandbox`'s proxy at `path` unless it is served already."""
        if sandbox in self._servers:
            return
        future = asyncio.run_coroutine_threadsafe(self._open(sandbox, path, policy), self._running_loop())
        await asyncio.wait_for(asyncio.wrap_future(future), _OPEN_TIMEOUT)

    async def close(self, sandbox: str) -> None:
        if sandbox in self._servers and self._loop is not None:
            future = asyncio.run_coroutine_threadsafe(self._close(sandbox), self._loop)
            await asyncio.wait_for(asyncio.wrap_future(future), _OPEN_TIMEOUT)

    def stop(self) -> None:
        """Close every proxy and end the thread."""
        with self._lock:
            loop, self._loop = self._loop, None
        if loop is None:
            return
        done: concurrent.futures.Future[None] = asyncio.run_coroutine_threadsafe(self._close_all(), loop)
        with contextlib.suppress(concurrent.futures.TimeoutError):
            done.result(_OPEN_TIMEOUT)
        loop.call_soon_threadsafe(loop.stop)
        if self._thread is not None:
            self._thread.join(_OPEN_TIMEOUT)

    def _running_loop(self) -> asyncio.AbstractEventLoop:
        with self._lock:
            if self._loop is None:
                loop = asyncio.new_event_loop()
                self._thread = threading.Thread(target=_serve, args=(loop,), name="kas-egress", daemon=True)
                self._thread.start()
                self._loop = loop
            return self._loop

    async def _open(self, sandbox: str, path: Path, policy: EgressPolicy) -> None:
        if sandbox in self._servers:
            return
        proxy = EgressProxy(sandbox, policy, resolver=self._resolver, limits=self.limits, observers=self.observers)
        with contextlib.suppress(FileNotFoundError):
            os.unlink(path)  # left by an earlier server: nothing listens on it any more
        listener = socket.socket(socket.AF_UNIX)
        listener.setblocking(False)
        listener.bind(str(path))
        if self._owner is not None:
            os.chown(path, *self._owner)
        os.chmod(path, 0o600)
        listener.listen(BACKLOG)
        accepting = asyncio.ensure_future(self._accept(listener, proxy))
        self._servers[sandbox] = _Served(listener, path, proxy, accepting)

    async def _accept(self, listener: socket.socket, proxy: EgressProxy) -> None:
        loop = asyncio.get_running_loop()
        while True:
            connection, _ = await loop.sock_accept(listener)
            connection.setblocking(False)
            taking = asyncio.ensure_future(self._take(connection, proxy))
            self._taking.add(taking)
            taking.add_done_callback(self._taking.discard)

    async def _take(self, connection: socket.socket, proxy: EgressProxy) -> None:
        """One connection to the socket: a descriptor the relay hands off, or a client speaking on it itself."""
        try:
            async with asyncio.timeout(self.limits.head_timeout):
                data, fds = await _receive(connection)
        except (OSError, TimeoutError):
            connection.close()
            return
        if not fds:
            await proxy.serve(connection, data)
            return
        connection.close()
        client = _handed_off(data, fds)
        if client is not None:
            await proxy.serve(client, b"")

    async def _close(self, sandbox: str) -> None:
        served = self._servers.pop(sandbox, None)
        if served is not None:
            served.accepting.cancel()
            with contextlib.suppress(OSError):
                os.unlink(served.path)
            served.listener.close()
            served.proxy.abort()

    async def _close_all(self) -> None:
        """Close every socket and end every connection still open."""
        for sandbox in list(self._servers):
            await self._close(sandbox)
        connections = [task for task in asyncio.all_tasks() if task is not asyncio.current_task()]
        if connections:
            await asyncio.wait(connections, timeout=_OPEN_TIMEOUT)


@dataclass(frozen=True)
class _Served:
    listener: socket.socket
    path: Path
    proxy: EgressProxy
    accepting: asyncio.Future[None]


async def _receive(connection: socket.socket) -> tuple[bytes, list[int]]:
    """The first message on `connection` with the descriptors sent along (at most one is wanted)."""
    loop = asyncio.get_running_loop()
    while True:
        try:
            data, fds, flags, _ = socket.recv_fds(connection, 64 * 1024, 2)
        except BlockingIOError:
            readable = loop.create_future()
            loop.add_reader(connection.fileno(), readable.set_result, None)
            try:
                await readable
            finally:
                loop.remove_reader(connection.fileno())
            continue
        if flags & socket.MSG_CTRUNC:
            _close_all_fds(fds)
            raise OSError("descriptors were cut off")
        return data, fds


def _handed_off(data: bytes, fds: list[int]) -> socket.socket | None:
    """The relay's connection: exactly one descriptor, of a connected TCP socket, sent with `HANDOFF`."""
    if data != relay.HANDOFF or len(fds) != 1:
        _close_all_fds(fds)
        return None
    try:
        client = socket.socket(fileno=fds[0])
    except OSError:
        _close_all_fds(fds)
        return None
    listening = client.getsockopt(socket.SOL_SOCKET, socket.SO_ACCEPTCONN)
    if client.type != socket.SOCK_STREAM or client.family not in (socket.AF_INET, socket.AF_INET6) or listening:
        client.close()
        return None
    client.setblocking(False)
    return client


def _close_all_fds(fds: list[int]) -> None:
    for fd in fds:
        with contextlib.suppress(OSError):
            os.close(fd)


def _serve(loop: asyncio.AbstractEventLoop) -> None:
    loop.run_forever()
    loop.close()
