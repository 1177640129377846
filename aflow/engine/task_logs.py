"""A task's log: each line goes to the event stream as it arrives and is saved beside the task record.

The saved form is text, one line per output line: `<ISO time> <stdout|stderr> <line>`. Until the
task ends the lines are kept in memory, or in a temporary file once they pass a megabyte, so a chatty
task does not grow the scheduler.
"""

from __future__ import annotations

import tempfile
import time
from datetime import UTC, datetime

import anyio.to_thread

from aflow.engine.events import EventBus, LogLine
from aflow.stores.base import ObjectStore

_SPILL_AT = 1 << 20


class TaskLog:
    """The LogSink the scheduler hands a backend for one task attempt."""

    def __init__(self, pathspec: str, bus: EventBus) -> None:
        self.pathspec = pathspec
        self.bus = bus
        self._kept: tempfile.SpooledTemporaryFile[bytes] | None = None

    async def line(self, stream: str, text: str) -> None:
        now = time.time()
        stamp = datetime.fromtimestamp(now, UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
        if self._kept is None:
            # Closed by save(). Past a megabyte a line costs a small write to the page cache.
            self._kept = tempfile.SpooledTemporaryFile(max_size=_SPILL_AT)  # noqa: SIM115
        self._kept.write(f"{stamp} {stream} {text}\n".encode(errors="replace"))
        self.bus.emit(LogLine(self.pathspec, stream, text, now))

    async def save(self, store: ObjectStore, key: str) -> None:
        """Write what the task printed (nothing when it printed nothing), and let go of it."""
        kept, self._kept = self._kept, None
        if kept is None:
            return
        try:
            kept.seek(0)
            data = await anyio.to_thread.run_sync(kept.read)
            await store.put(key, [data])
        finally:
            kept.close()


def parse_log(data: bytes | bytearray | memoryview) -> list[tuple[str, str, str]]:
    """(timestamp, stream, line) for each saved line."""
    out = []
    for raw in bytes(data).decode(errors="replace").splitlines():
        stamp, stream, text = ([*raw.split(" ", 2), "", ""])[:3]
        out.append((stamp, stream, text))
    return out
