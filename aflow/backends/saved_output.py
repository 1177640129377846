"""A remote task's output as its runtime saved it (engine/remote_output.py), read into the task's log:
a few running tasks at a time while they run (the live tail), and the rest of each once it ends.

Bounded whatever the fan-out: at most `tasks` tasks are tailed at once (the most recently started
that still print; a quiet one makes room for another), at most `rate` store GETs a second for the
whole run, and each GET is a ranged read of what is new since the last one (plus a few bytes to
check the object was not cut at its front meanwhile), never the whole object again. A task that is
not tailed loses nothing: its lines all come, in order, when it ends. No log service is polled.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

import anyio

from aflow.backends.base import LogSink
from aflow.backends.pacing import Pacer
from aflow.engine.remote_output import END_STREAM
from aflow.stores.base import NotFound, ObjectStore
from aflow.stores.log_format import parse_log

LIVE_CHUNK = 1 << 20  # bytes one live read takes at most (a chatty task catches up over reads)
LAST_CHUNK = 32 << 20  # bytes a read at the end takes at most (the saved object stays under 16 MiB)
CHECK_BYTES = 256  # bytes re-read before the cursor: the object was cut at its front if they moved
FIRST_GAP = 2.0  # seconds between reads of a tailed task that prints (the runtime's fastest save)
QUIET_GAP = 30.0  # the most a tailed task that prints nothing waits between reads
MIN_WATCH = 10.0  # seconds a tailed task is kept before a quiet one makes room for another


@dataclass(eq=False)
class OutputCursor:
    """How far one task attempt's saved output has been delivered to its log."""

    key: str
    at: int = 0  # bytes of the saved object delivered
    last: bytes = b""  # its last CHECK_BYTES delivered bytes
    lines: int = 0  # lines delivered
    ended: bool = False  # the runtime's end-of-output line was read: the output is complete
    lock: anyio.Lock = field(default_factory=anyio.Lock)


@dataclass
class ReadCounts:
    """Store reads made for output, for benchmarks and tests."""

    live_gets: int = 0
    last_gets: int = 0
    bytes: int = 0


async def deliver_new(
    store: ObjectStore, cursor: OutputCursor, logs: LogSink, limit: int, counts: ReadCounts, live: bool
) -> int:
    """Read what was saved past the cursor (at most `limit` bytes) and hand its lines to `logs`;
    returns the bytes read (0: nothing new, or nothing saved yet)."""
    check = cursor.last
    start = cursor.at - len(check)
    try:
        data = await store.get_range(cursor.key, start, len(check) + limit)
    except NotFound:
        return 0
    finally:
        if live:
            counts.live_gets += 1
        else:
            counts.last_gets += 1
    counts.bytes += len(data)
    if data[: len(check)] == check:
        data = data[len(check) :]
    else:  # cut at its front (over 16 MiB of output) or rewritten: find where we were
        whole = bytes(await store.get(cursor.key))
        counts.bytes += len(whole)
        # The last delivered line (its time has microseconds): the bytes before it may be gone.
        anchor = check[check.rfind(b"\n", 0, len(check) - 1) + 1 :]
        found = whole.rfind(anchor) if anchor else -1
        if found < 0:
            await logs.line("stderr", "[aflow] the start of this output was cut (over 16 MiB)")
            cursor.at, data = 0, whole
        else:
            cursor.at, data = found + len(anchor), whole[found + len(anchor) :]
    whole_lines = data[: data.rfind(b"\n") + 1]  # a ranged read may end inside a line
    if not whole_lines:
        return 0
    cursor.at += len(whole_lines)
    cursor.last = (cursor.last + whole_lines)[-CHECK_BYTES:]
    for _, stream, text in parse_log(whole_lines):
        if stream == END_STREAM:
            cursor.ended = True
            continue
        cursor.lines += 1
        await logs.line(stream if stream in ("stdout", "stderr") else "stdout", text)
    return len(whole_lines)


@dataclass(eq=False)
class _Watch:
    """A tailed task: when it is read next, and when it last had something new."""

    cursor: OutputCursor
    logs: LogSink
    since: float = field(default_factory=time.monotonic)
    due: float = field(default_factory=time.monotonic)
    gap: float = FIRST_GAP
    quiet: bool = False


class LiveTail:
    """Tails a few running tasks' saved output at a bounded rate; `finish()` reads the rest."""

    def __init__(self, store: ObjectStore, tasks: int, rate: float) -> None:
        self.store = store
        self.tasks = max(0, tasks)
        self.counts = ReadCounts()
        self._pacer = Pacer(rate)
        self._cursors: dict[object, OutputCursor] = {}
        self._logs: dict[object, LogSink] = {}
        self._waiting: dict[object, None] = {}  # running, not tailed: oldest first
        self._watched: dict[object, _Watch] = {}
        self._changed = anyio.Event()

    def cursor(self, task: object, key: str) -> OutputCursor:
        if task not in self._cursors:
            self._cursors[task] = OutputCursor(key)
        return self._cursors[task]

    def started(self, task: object, key: str, logs: LogSink) -> None:
        """The task runs: tail it now if there is room, or in place of a quiet one, else later."""
        if self.tasks == 0 or task in self._watched or task in self._waiting:
            return
        self.cursor(task, key)
        self._logs[task] = logs
        self._waiting[task] = None
        self._make_room(time.monotonic())

    def _make_room(self, now: float) -> None:
        for task, watch in list(self._watched.items()):
            if not self._waiting:
                break
            if watch.quiet and now - watch.since >= MIN_WATCH:
                del self._watched[task]  # keeps its cursor: the rest comes later or at its end
                self._waiting[task] = None
        while self._waiting and len(self._watched) < self.tasks:
            task = next(reversed(self._waiting))  # the most recently started
            del self._waiting[task]
            self._watched[task] = _Watch(self._cursors[task], self._logs[task])
        self._changed.set()

    async def finish(self, task: object, key: str, logs: LogSink) -> OutputCursor:
        """Deliver the rest of an ended task's saved output. The cursor says whether it was
        complete (`ended`: the runtime's last save came) and how many lines were delivered."""
        self._waiting.pop(task, None)
        self._logs.pop(task, None)
        if self._watched.pop(task, None) is not None:
            self._make_room(time.monotonic())
        cursor = self._cursors.pop(task, None) or OutputCursor(key)
        async with cursor.lock:  # after a live read of it in flight
            while not cursor.ended:
                if not await deliver_new(self.store, cursor, logs, LAST_CHUNK, self.counts, False):
                    break
        return cursor

    async def run(self) -> None:
        """Read the tailed task that is due next, paced for the whole run."""
        while True:
            if not self._watched:
                await self._changed.wait()
                self._changed = anyio.Event()
                continue
            task, watch = min(self._watched.items(), key=lambda item: item[1].due)
            delay = watch.due - time.monotonic()
            if delay > 0:
                with anyio.move_on_after(delay):
                    await self._changed.wait()  # a task started or ended: choose again
                self._changed = anyio.Event()
                continue
            await self._pacer.wait()
            if self._watched.get(task) is not watch:
                continue  # it ended meanwhile
            async with watch.cursor.lock:
                try:
                    got = await deliver_new(
                        self.store, watch.cursor, watch.logs, LIVE_CHUNK, self.counts, True
                    )
                except Exception:  # a failing read only delays the live view
                    got = 0
            now = time.monotonic()
            watch.quiet = not got
            watch.gap = FIRST_GAP if got else min(QUIET_GAP, watch.gap * 2)
            watch.due = now + (0 if got >= LIVE_CHUNK else watch.gap)
            if watch.quiet:
                self._make_room(now)
