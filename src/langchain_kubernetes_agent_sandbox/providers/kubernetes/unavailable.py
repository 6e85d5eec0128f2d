"""Riding out an API server that answers 503: it is starting (CRD paths not installed yet), restarting or
shedding load, and says so. Such an answer means the request was not served, so asking again does nothing twice;
a claim the client created before a later 503 is rolled back by the client itself before it raises."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from typing import TypeVar

from .errors import API_EXCEPTIONS

T = TypeVar("T")

FIRST_PAUSE = 0.1
LONGEST_PAUSE = 1.0


async def through_unavailability(call: Callable[[], Awaitable[T]], *, within: float) -> T:
    """`call()`, asked again after each 503 answer until the API server has been unavailable for `within`
    seconds (counted from its first 503: a long wait for a pod before it is no reason to give up); then the 503 is
    raised."""
    give_up_at: float | None = None
    pause = FIRST_PAUSE
    while True:
        try:
            return await call()
        except API_EXCEPTIONS as error:
            if error.status != 503:
                raise
            give_up_at = give_up_at or time.monotonic() + within
            if time.monotonic() + pause > give_up_at:
                raise
        await asyncio.sleep(pause)
        pause = min(2 * pause, LONGEST_PAUSE)
