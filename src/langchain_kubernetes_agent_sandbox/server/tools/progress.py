"""A running command's output, streamed to the MCP client as progress notifications while the call runs.

Only a call that carries a progress token gets them (the SDK sends nothing otherwise), and they are bounded:
at most one notification per `INTERVAL`, each with at most `MAX_MESSAGE_BYTES` of new text, and no more than
`MAX_STREAMED_BYTES` in all; past that, only the byte count moves. The call's result is the same either way.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator

from mcp.server.fastmcp import Context

INTERVAL = 0.1
MAX_MESSAGE_BYTES = 8 * 1024
MAX_STREAMED_BYTES = 1024 * 1024
_STREAM_NAMES = ("", "[stderr] ")


class OutputProgress:
    """Collects output as it arrives (`feed`, the engine's output callback) and sends it on in bounded batches."""

    def __init__(self, context: Context) -> None:  # type: ignore[type-arg]
        self._context = context
        self._pending: list[tuple[int, bytes]] = []
        self._pending_bytes = 0
        self._seen = 0
        self._streamed = 0
        self._wake = asyncio.Event()

    @property
    def wanted(self) -> bool:
        meta = self._context.request_context.meta
        return meta is not None and meta.progressToken is not None

    def feed(self, stream: int, data: bytes) -> None:
        self._seen += len(data)
        room = min(
            MAX_STREAMED_BYTES - self._streamed - self._pending_bytes, MAX_MESSAGE_BYTES * 4 - self._pending_bytes
        )
        if room > 0:
            self._pending.append((stream, data[:room]))
            self._pending_bytes += min(len(data), room)
        self._wake.set()

    async def _send(self) -> None:
        batch, self._pending, self._pending_bytes = self._pending, [], 0
        text = ""
        for stream, data in batch:
            chunk = data.decode("utf-8", "replace")
            text += (
                chunk
                if not _STREAM_NAMES[stream]
                else "".join(f"{_STREAM_NAMES[stream]}{line}" for line in chunk.splitlines(keepends=True))
            )
        encoded = text.encode("utf-8")[:MAX_MESSAGE_BYTES]
        self._streamed += sum(len(data) for _, data in batch)
        await self._context.report_progress(self._seen, message=encoded.decode("utf-8", "ignore") or None)

    async def _run(self) -> None:
        while True:
            await self._wake.wait()
            self._wake.clear()
            await self._send()
            await asyncio.sleep(INTERVAL)


@contextlib.asynccontextmanager
async def streamed(context: Context) -> AsyncIterator[OutputProgress | None]:  # type: ignore[type-arg]
    """An `OutputProgress` while the block runs, or None when the client asked for no progress."""
    progress = OutputProgress(context)
    if not progress.wanted:
        yield None
        return
    sender = asyncio.create_task(progress._run())
    try:
        yield progress
    finally:
        sender.cancel()
        with contextlib.suppress(asyncio.CancelledError, Exception):
            await sender
        if progress._pending:
            with contextlib.suppress(Exception):
                await progress._send()
