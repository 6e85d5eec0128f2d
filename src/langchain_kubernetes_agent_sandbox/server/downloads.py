"""A file that download_file gives in pieces is read from its sandbox once.

Each piece is a call of its own. Reading the whole file for each would read a 100 MiB file fifty times in 2 MiB
pieces; instead the read of the first piece is kept for the calls that follow, so every piece, and the sha256
each one carries, come from the same version of the file. What is kept is bounded (`MAX_KEPT_BYTES` in all, the
least recently used dropped first), short-lived (`KEEP_SECONDS` after its last piece was asked for) and found
only by the principal and session that read it; a piece whose read was dropped reads the file again.
"""

from __future__ import annotations

import hashlib
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass

MAX_KEPT_BYTES = 256 * 1024 * 1024
KEEP_SECONDS = 120.0

Key = tuple[str, str, str]
"""(principal, session id, the file's absolute path)."""


@dataclass(frozen=True)
class Snapshot:
    """A file as one read found it."""

    data: bytes
    sha256: str
    is_text: bool
    """Whether the whole file is UTF-8 text without NUL bytes (see `files.as_text`)."""

    @classmethod
    def of(cls, data: bytes, is_text: bool) -> Snapshot:
        return cls(data, hashlib.sha256(data).hexdigest(), is_text)


class Downloads:
    """The snapshots of downloads in progress."""

    def __init__(self, *, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._kept: OrderedDict[Key, tuple[Snapshot, float]] = OrderedDict()
        self._bytes = 0

    def resumed(self, key: Key) -> Snapshot | None:
        """The snapshot a download in progress read, if it is still kept."""
        self._expire()
        found = self._kept.get(key)
        return None if found is None else found[0]

    def keep(self, key: Key, snapshot: Snapshot) -> None:
        """Keep `snapshot` for the next piece (a file larger than `MAX_KEPT_BYTES` is read again instead)."""
        self.done(key)
        if len(snapshot.data) > MAX_KEPT_BYTES:
            return
        self._kept[key] = (snapshot, self._clock())
        self._bytes += len(snapshot.data)
        while self._bytes > MAX_KEPT_BYTES:
            self._forget(next(iter(self._kept)))

    def done(self, key: Key) -> None:
        """The download's last piece went out: its snapshot is not needed any more."""
        if key in self._kept:
            self._forget(key)

    def _expire(self) -> None:
        now = self._clock()
        for key in [key for key, (_, used) in self._kept.items() if now - used > KEEP_SECONDS]:
            self._forget(key)

    def _forget(self, key: Key) -> None:
        snapshot, _ = self._kept.pop(key)
        self._bytes -= len(snapshot.data)
