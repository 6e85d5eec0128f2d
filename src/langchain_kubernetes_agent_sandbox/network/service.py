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
import threading
from pathlib import Path
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
        self._servers: dict[str, tuple[asyncio.Server, EgressProxy]] = {}
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
        server = await asyncio.start_unix_server(proxy.handle, path, limit=self.limits.max_head_bytes)
        if self._owner is not None:
            os.chown(path, *self._owner)
        os.chmod(path, 0o600)
        self._servers[sandbox] = (server, proxy)

    async def _close(self, sandbox: str) -> None:
        served = self._servers.pop(sandbox, None)
        if served is not None:
            server, proxy = served
            for socket in server.sockets:
                with contextlib.suppress(OSError, TypeError):
                    os.unlink(socket.getsockname())
            server.close()
            proxy.abort()

    async def _close_all(self) -> None:
        """Close every socket and end every connection still open."""
        for sandbox in list(self._servers):
            await self._close(sandbox)
        connections = [task for task in asyncio.all_tasks() if task is not asyncio.current_task()]
        if connections:
            await asyncio.wait(connections, timeout=_OPEN_TIMEOUT)


def _serve(loop: asyncio.AbstractEventLoop) -> None:
    loop.run_forever()
    loop.close()
