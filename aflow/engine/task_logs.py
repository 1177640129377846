"""A task's log: each line goes to the event stream as it arrives and is saved beside the task record.

The saved form is text, one line per output line: `<ISO time> <stdout|stderr> <line>`.
"""

from __future__ import annotations

import time
from datetime import UTC, datetime

from aflow.engine.events import EventBus, LogLine
from aflow.stores.base import ObjectStore


class TaskLog:
    """The LogSink the scheduler hands a backend for one task attempt."""

    def __init__(self, pathspec: str, bus: EventBus) -> None:
        self.pathspec = pathspec
        self.bus = bus
        self.lines: list[str] = []

    async def line(self, stream: str, text: str) -> None:
        now = time.time()
        stamp = datetime.fromtimestamp(now, UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
        self.lines.append(f"{stamp} {stream} {text}\n")
        self.bus.emit(LogLine(self.pathspec, stream, text, now))

    async def save(self, store: ObjectStore, key: str) -> None:
        if self.lines:
            await store.put(key, ["".join(self.lines).encode()])


def parse_log(data: bytes | bytearray | memoryview) -> list[tuple[str, str, str]]:
    """(timestamp, stream, line) for each saved line."""
    out = []
    for raw in bytes(data).decode(errors="replace").splitlines():
        stamp, stream, text = ([*raw.split(" ", 2), "", ""])[:3]
        out.append((stamp, stream, text))
    return out
