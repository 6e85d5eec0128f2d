"""Bounded capture of command output: keep the head and the tail, count what was dropped.

A command may print gigabytes; the caller gets at most `max_bytes` per stream, and memory stays bounded while
reading, because the middle is never held.
"""

from __future__ import annotations

from dataclasses import dataclass

DEFAULT_MAX_OUTPUT_BYTES = 256 * 1024


@dataclass(frozen=True)
class OutputLimit:
    """How much of each stream a result keeps inline, and which share of it comes from the start."""

    max_bytes: int = DEFAULT_MAX_OUTPUT_BYTES
    head_share: float = 0.5

    def __post_init__(self) -> None:
        if self.max_bytes < 64:
            raise ValueError(f"max_bytes must be at least 64, got {self.max_bytes}.")
        if not 0.0 <= self.head_share <= 1.0:
            raise ValueError(f"head_share must lie between 0 and 1, got {self.head_share}.")

    @property
    def head_bytes(self) -> int:
        return int(self.max_bytes * self.head_share)

    @property
    def tail_bytes(self) -> int:
        return self.max_bytes - self.head_bytes


def dropped_marker(dropped: int) -> str:
    """The line put where output was cut; it says how much is missing so nobody mistakes it for the whole."""
    return f"\n[... {dropped} bytes of output dropped ...]\n"


class CappedBuffer:
    """Accumulates a byte stream, holding only its first and last bytes up to an `OutputLimit`."""

    def __init__(self, limit: OutputLimit) -> None:
        self._limit = limit
        self._head = bytearray()
        self._tail = bytearray()
        self.total_bytes = 0

    def feed(self, chunk: bytes) -> None:
        self.total_bytes += len(chunk)
        room = self._limit.head_bytes - len(self._head)
        if room > 0:
            self._head += chunk[:room]
            chunk = chunk[room:]
        if chunk and self._limit.tail_bytes:
            self._tail += chunk
            excess = len(self._tail) - self._limit.tail_bytes
            if excess > 0:
                del self._tail[:excess]

    @property
    def dropped_bytes(self) -> int:
        return self.total_bytes - len(self._head) - len(self._tail)

    def data(self) -> bytes:
        """The kept bytes, head then tail, without a marker (for callers that check `dropped_bytes`)."""
        return bytes(self._head + self._tail)

    def text(self) -> str:
        """The kept output as text: invalid UTF-8 is replaced, never an error; a cut is marked in place."""
        head = self._head.decode("utf-8", "replace")
        tail = self._tail.decode("utf-8", "replace")
        if self.dropped_bytes:
            return head + dropped_marker(self.dropped_bytes) + tail
        return head + tail


def cap(data: bytes, limit: OutputLimit) -> CappedBuffer:
    """Cap an output that arrived whole (from a runtime that returns it in one piece)."""
    buffer = CappedBuffer(limit)
    buffer.feed(data)
    return buffer
