"""Reading a remote task's saved output (backends/saved_output.py): ranged reads of what is new,
an object cut at its front, the end marker, and a live tail bounded in tasks and GETs."""

from __future__ import annotations

import time

import anyio

from aflow.backends.saved_output import LiveTail, OutputCursor, ReadCounts, deliver_new
from aflow.engine.remote_output import END_STREAM
from aflow.stores.log_format import log_line
from aflow.stores.memory import MemoryStore


class Lines:
    """A LogSink that keeps what it is given."""

    def __init__(self) -> None:
        self.got: list[tuple[str, str]] = []

    async def line(self, stream: str, text: str) -> None:
        self.got.append((stream, text))


def entries(texts: list[str], stream: str = "stdout") -> bytes:
    return b"".join(log_line(1_700_000_000 + i, stream, t) for i, t in enumerate(texts))


def test_each_line_once_in_order_through_a_cut_and_to_the_end() -> None:
    async def main() -> None:
        store, sink, counts = MemoryStore(), Lines(), ReadCounts()
        cursor = OutputCursor("out")
        assert await deliver_new(store, cursor, sink, 1 << 20, counts, True) == 0  # not saved yet
        first = entries([f"line {i}" for i in range(5)])
        await store.put("out", [first])
        assert await deliver_new(store, cursor, sink, 1 << 20, counts, True) == len(first)
        assert await deliver_new(store, cursor, sink, 1 << 20, counts, True) == 0  # nothing new
        # A read limited to a few bytes stops at a whole line.
        more = first + entries([f"more {i}" for i in range(3)], "stderr")
        await store.put("out", [more])
        await deliver_new(store, cursor, sink, 60, counts, True)
        assert sink.got[-1] == ("stderr", "more 0")
        # The runtime cut the front (past its 16 MiB): the reader finds where it was.
        cut = more[more.index(b"\n", len(first) // 2) + 1 :] + entries(["after the cut"])
        await store.put("out", [cut])
        await deliver_new(store, cursor, sink, 1 << 20, counts, True)
        ended = cut + log_line(time.time(), END_STREAM, "")
        await store.put("out", [ended])
        await deliver_new(store, cursor, sink, 1 << 20, counts, False)
        assert cursor.ended
        texts = [t for _, t in sink.got]
        want = [*(f"line {i}" for i in range(5)), *(f"more {i}" for i in range(3)), "after the cut"]
        assert texts == want
        assert cursor.lines == len(texts)

    anyio.run(main)


def test_live_tail_reads_few_tasks_at_a_bounded_rate_and_the_rest_at_the_end() -> None:
    async def main() -> None:
        store = MemoryStore()
        tail = LiveTail(store, tasks=3, rate=20.0)
        sinks = {i: Lines() for i in range(200)}
        for i in range(200):
            await store.put(f"out/{i}", [entries([f"task {i} says hi"])])
            tail.started(i, f"out/{i}", sinks[i])
        started = time.monotonic()
        async with anyio.create_task_group() as tg:
            tg.start_soon(tail.run)
            with anyio.fail_after(60):
                while tail.counts.live_gets < 3:
                    await anyio.sleep(0.05)
            elapsed = time.monotonic() - started
            tg.cancel_scope.cancel()
        read = {i for i, sink in sinks.items() if sink.got}
        # Three tasks were tailed, not 200; no more GETs than the rate allows.
        assert len(read) == 3
        assert tail.counts.live_gets <= 20 * elapsed + 1
        # The others lose nothing: each one's line comes when it ends, each once.
        for i in range(200):
            await store.put(f"out/{i}", [entries([f"task {i} says hi"]), log_line(0, END_STREAM, "")])
            cursor = await tail.finish(i, f"out/{i}", sinks[i])
            assert cursor.ended and sinks[i].got == [("stdout", f"task {i} says hi")]

    anyio.run(main)
