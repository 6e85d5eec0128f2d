"""A call's own output cap, below the one the sandbox captured with.

The sandbox keeps the head and tail of each stream up to the server's largest cap (what a call may ask for);
a call that asks for less (a model's call, by default) gets the head and tail of that, cut the same way, so the
bytes it sees are the command's first and last ones whichever cap applied.
"""

from __future__ import annotations

import dataclasses

from ..output import OutputLimit, dropped_marker
from ..results import CommandResult


def recapped(result: CommandResult, limit: OutputLimit) -> CommandResult:
    """`result` with each stream cut to `limit`'s head and tail; a stream within it is left as it is.

    `limit` is at most the cap the output was captured with (`call_limit`): a stream over it keeps
    `limit.max_bytes`, so `dropped_bytes` counts all the rest, whatever the wider cap had dropped already (its
    cut lies in the middle this one drops); a stream within it lost nothing."""
    stdout, stdout_dropped = _cut(result.stdout, result.stdout_bytes, limit)
    stderr, stderr_dropped = _cut(result.stderr, result.stderr_bytes, limit)
    if not stdout_dropped and not stderr_dropped:
        return result
    return dataclasses.replace(
        result,
        stdout=stdout,
        stderr=stderr,
        dropped_bytes=stdout_dropped + stderr_dropped,
    )


def call_limit(captured: OutputLimit, requested: int) -> OutputLimit:
    """The cap for a call that asks for `requested` bytes per stream, in a sandbox that captured with `captured`:
    never wider than what was captured (a stream within it then lost nothing to either cap)."""
    return dataclasses.replace(captured, max_bytes=min(requested, captured.max_bytes))


def _cut(text: str, total: int, limit: OutputLimit) -> tuple[str, int]:
    if total <= limit.max_bytes:
        return text, 0
    data = text.encode("utf-8")
    head = data[: limit.head_bytes].decode("utf-8", "ignore")
    tail = data[len(data) - limit.tail_bytes :].decode("utf-8", "ignore") if limit.tail_bytes else ""
    dropped = total - limit.max_bytes
    return head + dropped_marker(dropped) + tail, dropped
