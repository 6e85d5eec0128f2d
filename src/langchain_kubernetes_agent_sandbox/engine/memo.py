"""What this server process learned about sandboxes that never changes while they live, kept bounded."""

from __future__ import annotations

from collections import OrderedDict
from typing import Generic, TypeVar

from ..sandbox import Sandbox

T = TypeVar("T")


class SandboxMemo(Generic[T]):
    """Facts by provider and sandbox id, the least recently used forgotten first beyond `size`: a long-lived
    server sees sandboxes come and go, and a forgotten fact is only found out again."""

    def __init__(self, size: int = 4096) -> None:
        self._size = size
        self._facts: OrderedDict[tuple[str, str], T] = OrderedDict()

    def get(self, sandbox: Sandbox) -> T | None:
        key = (sandbox.info.provider, sandbox.id)
        if key in self._facts:
            self._facts.move_to_end(key)
        return self._facts.get(key)

    def put(self, sandbox: Sandbox, fact: T) -> None:
        self._facts[(sandbox.info.provider, sandbox.id)] = fact
        while len(self._facts) > self._size:
            self._facts.popitem(last=False)

    def __len__(self) -> int:
        return len(self._facts)
