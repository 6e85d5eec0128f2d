"""The egress proxies of one server: a listener per sandbox with egress, served from a thread of their own.

A thread, not the server's event loop: proxied bytes then never queue behind tool calls, and the proxies work
whichever loop (or none) the provider's caller runs. A listener is made again when a server restarts (or the
sandbox's holder, and with it its network namespace, is new), so a sandbox that outlived its server finds its way
out again with its next command.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import socket
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol, runtime_checkable

from .policy import EgressPolicy
from .proxy import EgressProxy, Observer, ProxyLimits, Resolver, system_resolver

_OPEN_TIMEOUT = 10.0


@runtime_checkable
class EgressObservable(Protocol):
    """A provider whose egress decisions can be watched (for /metrics)."""

    def observe_egress(self, observer: Observer) -> None: ...


class EgressService:
    """Opens and closes the proxies; every method may be called from any thread."""

    def __init__(self, *, resolver: Resolver = system_resolver, limits: ProxyLimits | None = None) -> None:
        self.limits = limits or ProxyLimits()
        self.observers: list[Observer] = []
        self._resolver = resolver
        self._servers: dict[str | None, _Served] = {}
        self._everyone: set[socket.socket] = set()
        self._taking: set[asyncio.Future[None]] = set()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()

    def serves(self, sandbox: str | None, place: int) -> bool:
        """Whether `sandbox`'s proxy listens in the namespace `place` (its inode) already."""
        served = self._servers.get(sandbox)
        return served is not None and served.place == place

    async def open(
        self, sandbox: str | None, place: int, listen: Callable[[], socket.socket], policy: EgressPolicy
    ) -> None:
        """Serve `sandbox`'s proxy on the socket `listen` makes (non-blocking, listening) in the namespace `place`,
        unless it is served there already; one served in an earlier namespace of the sandbox (its holder was
        restarted) is closed. Opening happens in the proxies' thread, one at a time, so two commands starting at
        once make one listener. `sandbox` None: a proxy shared by many clients, each named by its address."""
        future = asyncio.run_coroutine_threadsafe(self._open(sandbox, place, listen, policy), self._running_loop())
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

    async def _open(
        self, sandbox: str | None, place: int, listen: Callable[[], socket.socket], policy: EgressPolicy
    ) -> None:
        if self.serves(sandbox, place):
            return
        await self._close(sandbox)
        listener = listen()
        proxy = EgressProxy(
            sandbox,
            policy,
            resolver=self._resolver,
            limits=self.limits,
            observers=self.observers,
            everyone=self._everyone,
        )
        accepting = asyncio.ensure_future(self._accept(listener, proxy))
        self._servers[sandbox] = _Served(place, listener, proxy, accepting)

    async def _accept(self, listener: socket.socket, proxy: EgressProxy) -> None:
        loop = asyncio.get_running_loop()
        while True:
            connection, _ = await loop.sock_accept(listener)
            connection.setblocking(False)
            taking = asyncio.ensure_future(proxy.serve(connection))
            self._taking.add(taking)
            taking.add_done_callback(self._taking.discard)

    async def _close(self, sandbox: str | None) -> None:
        served = self._servers.pop(sandbox, None)
        if served is not None:
            served.accepting.cancel()
            served.listener.close()
            served.proxy.abort()

    async def _close_all(self) -> None:
        """Close every listener and end every connection still open."""
        for sandbox in list(self._servers):
            await self._close(sandbox)
        connections = [task for task in asyncio.all_tasks() if task is not asyncio.current_task()]
        if connections:
            await asyncio.wait(connections, timeout=_OPEN_TIMEOUT)


@dataclass(frozen=True)
class _Served:
    place: int
    listener: socket.socket
    proxy: EgressProxy
    accepting: asyncio.Future[None]


def _serve(loop: asyncio.AbstractEventLoop) -> None:
    loop.run_forever()
    loop.close()
