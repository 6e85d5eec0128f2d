"""A private event loop on its own thread, so sync callers can use async sandboxes from anywhere.

`asyncio.run` per call fails inside a running loop (Jupyter, LangGraph's sync tools run in worker threads of
an async app) and cannot keep loop-bound resources such as an MCP session alive between calls.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Coroutine
from concurrent.futures import Future
from typing import Any, TypeVar

T = TypeVar("T")


class LoopThread:
    """One event loop running forever on a daemon thread; started on first use."""

    def __init__(self, name: str = "kas-adapter-loop") -> None:
        self._name = name
        self._loop: asyncio.AbstractEventLoop | None = None
        self._lock = threading.Lock()
        self._users = 1

    def share(self) -> LoopThread:
        """This loop for one more user (a backend on a fork, whose sandbox is bound to the same loop): `close`
        stops it only when the last user closes it. Each user closes it once."""
        with self._lock:
            self._users += 1
        return self

    @property
    def last_user(self) -> bool:
        """Whether closing now stops the loop (no other user shares it)."""
        return self._users <= 1

    @property
    def loop(self) -> asyncio.AbstractEventLoop:
        with self._lock:
            if self._loop is None or self._loop.is_closed():
                loop = asyncio.new_event_loop()
                threading.Thread(target=loop.run_forever, name=self._name, daemon=True).start()
                self._loop = loop
            return self._loop

    def submit(self, coro: Coroutine[Any, Any, T]) -> Future[T]:
        return asyncio.run_coroutine_threadsafe(coro, self.loop)

    def run(self, coro: Coroutine[Any, Any, T]) -> T:
        """Run `coro` on the private loop and wait for it; never call this from that loop itself."""
        if self._in_loop():
            coro.close()
            raise RuntimeError("A sync sandbox method was called from the adapter's own event loop.")
        return self.submit(coro).result()

    async def call(self, coro: Coroutine[Any, Any, T]) -> T:
        """Await `coro` on the private loop from any loop (for resources bound to the private loop)."""
        if self._in_loop():
            return await coro
        return await asyncio.wrap_future(self.submit(coro))

    def _in_loop(self) -> bool:
        try:
            return asyncio.get_running_loop() is self._loop
        except RuntimeError:
            return False

    def close(self) -> None:
        """Stop the loop and its thread (unless another user shares it); a later call starts a fresh one."""
        with self._lock:
            if self._users > 1:
                self._users -= 1
                return
            loop, self._loop = self._loop, None
        if loop is not None and not loop.is_closed():
            loop.call_soon_threadsafe(loop.stop)
