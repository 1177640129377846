"""A task's log: each line goes to the event stream as it arrives and is saved beside the task record.

The saved form is text, one line per output line: `<ISO time> <stdout|stderr> <line>`. Until the
task ends the lines are kept in memory, or in a temporary file once they pass a megabyte, so a chatty
task does not grow the scheduler. While the task runs, what it printed so far is saved again every
few seconds (by the scheduler's one LogFlusher, not a task per log), so `aflow logs --follow` and
`aflow ui` can tail a live task; past PARTIAL_LIMIT only the final save writes it.
"""

from __future__ import annotations

import tempfile
import time

import anyio.to_thread

from aflow.engine.events import EventBus, OutputLine
from aflow.stores.base import ObjectStore
from aflow.stores.log_format import log_line

_SPILL_AT = 1 << 20
PARTIAL_LIMIT = 4 << 20  # bytes: a log longer than this is not rewritten while the task runs
FLUSH_SECONDS = 2.0


class TaskLog:
    """The LogSink the scheduler hands a backend for one task attempt."""

    def __init__(self, pathspec: str, bus: EventBus, flusher: LogFlusher | None = None) -> None:
        self.pathspec = pathspec
        self.bus = bus
        self.flusher = flusher
        self.key: str | None = None  # where it is saved; set by whoever saves it
        self._kept: tempfile.SpooledTemporaryFile[bytes] | None = None
        self._lock = anyio.Lock()

    async def line(self, stream: str, text: str) -> None:
        now = time.time()
        if self._kept is None:
            # Closed by save(). Past a megabyte a line costs a small write to the page cache.
            self._kept = tempfile.SpooledTemporaryFile(max_size=_SPILL_AT)  # noqa: SIM115
        self._kept.write(log_line(now, stream, text))
        self.bus.emit(OutputLine(self.pathspec, stream, text, now))
        if self.flusher is not None:
            self.flusher.dirty.add(self)

    async def save(self, store: ObjectStore, key: str) -> None:
        """Write what the task printed (nothing when it printed nothing), and let go of it."""
        async with self._lock:
            if self.flusher is not None:
                self.flusher.dirty.discard(self)
            kept, self._kept = self._kept, None
            if kept is None:
                return
            try:
                data = await anyio.to_thread.run_sync(_contents, kept)
                await store.put(key, [data])
            finally:
                kept.close()

    async def save_so_far(self, store: ObjectStore) -> None:
        """Write what the task has printed so far, while it runs (the final save() overwrites it)."""
        async with self._lock:
            kept = self._kept
            if kept is None or self.key is None or kept.tell() > PARTIAL_LIMIT:
                return
            # Read here, not in a thread: line() may write to the same file at any await.
            data = _contents(kept)
            await store.put(self.key, [data])


def _contents(kept: tempfile.SpooledTemporaryFile[bytes]) -> bytes:
    end = kept.tell()
    kept.seek(0)
    data = kept.read(end)
    kept.seek(end)
    return data


class LogFlusher:
    """Every FLUSH_SECONDS, saves the logs that got new lines: one loop for a whole run."""

    def __init__(self, store: ObjectStore) -> None:
        self.store = store
        self.dirty: set[TaskLog] = set()

    async def run(self) -> None:
        limiter = anyio.CapacityLimiter(16)

        async def flush(log: TaskLog) -> None:
            async with limiter:
                try:
                    await log.save_so_far(self.store)
                except Exception:
                    self.dirty.add(log)  # the next round tries again; the final save decides

        while True:
            await anyio.sleep(FLUSH_SECONDS)
            logs, self.dirty = self.dirty, set()
            async with anyio.create_task_group() as tg:
                for log in logs:
                    tg.start_soon(flush, log)
