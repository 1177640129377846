"""A shared pace for calls to an API whose quota is counted per account, not per caller."""

from __future__ import annotations

import time

import anyio


class Pacer:
    """At most `rate` calls a second across everyone who waits on it (spaced evenly)."""

    def __init__(self, rate: float) -> None:
        self.gap = 1.0 / rate if rate > 0 else 0.0
        self._next = 0.0
        self._lock = anyio.Lock()

    async def wait(self) -> None:
        async with self._lock:
            now = time.monotonic()
            start = max(now, self._next)
            self._next = start + self.gap
        if start > now:
            await anyio.sleep(start - now)
