"""Large-object transfer shared by the cloud stores: parts up, ranges down, memory bounded.

An upload larger than the threshold goes as parts of `part_size`, at most `concurrency` in flight:
each part is a view of the object's own memory (a copy only where a part spans two of the object's
buffers), cut when its turn comes, so no second copy of the object is ever made. A download larger
than the threshold is fetched as concurrent ranged reads, each written into its place in one buffer
allocated up front. Settings come from the environment so they can be tuned without code:
AFLOW_TRANSFER_THRESHOLD, AFLOW_TRANSFER_PART_SIZE (bytes; at least 5 MiB, S3's floor) and
AFLOW_TRANSFER_CONCURRENCY.
"""

from __future__ import annotations

import contextlib
import random
from collections.abc import Awaitable, Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

import anyio

from aflow.env_numbers import env_int
from aflow.exception import first_error
from aflow.stores.base import Buffer

T = TypeVar("T")
MiB = 1 << 20


@dataclass(frozen=True)
class TransferSettings:
    threshold: int = 16 * MiB
    part_size: int = 16 * MiB
    concurrency: int = 8

    @classmethod
    def from_env(cls) -> TransferSettings:
        return cls(
            threshold=env_int("AFLOW_TRANSFER_THRESHOLD", cls.threshold, minimum=0),
            part_size=max(5 * MiB, env_int("AFLOW_TRANSFER_PART_SIZE", cls.part_size)),
            concurrency=max(1, env_int("AFLOW_TRANSFER_CONCURRENCY", cls.concurrency)),
        )


def total_size(parts: Sequence[Buffer]) -> int:
    return sum(memoryview(p).nbytes for p in parts)


def join(parts: Sequence[Buffer]) -> bytes:
    """One bytes object (for small objects only)."""
    return b"".join(memoryview(p).cast("B") for p in parts)


def cut(parts: Sequence[Buffer], size: int) -> Iterator[Buffer]:
    """The concatenation of `parts` in pieces of `size` bytes (the last may be shorter)."""
    views = [memoryview(p).cast("B") for p in parts if memoryview(p).nbytes]
    pending: list[memoryview] = []
    pending_len = 0
    for view in views:
        while view.nbytes:
            take = min(size - pending_len, view.nbytes)
            if not pending and take == size:
                yield view[:take]  # a whole part inside one buffer: no copy
            else:
                pending.append(view[:take])
                pending_len += take
                if pending_len == size:
                    yield b"".join(pending)
                    pending, pending_len = [], 0
            view = view[take:]
    if pending:
        yield b"".join(pending)


async def upload_parts(
    parts: Sequence[Buffer],
    settings: TransferSettings,
    send: Callable[[int, Buffer], Awaitable[T]],
) -> list[T]:
    """Call `send(number, piece)` for each piece (numbered from 1), `concurrency` at a time, and
    return the results in order. A failure cancels the parts still in flight and is raised."""
    results: dict[int, T] = {}
    slots = anyio.Semaphore(settings.concurrency)

    async def one(number: int, piece: Buffer) -> None:
        try:
            results[number] = await send(number, piece)
        finally:
            slots.release()

    with _first_error():
        async with anyio.create_task_group() as tg:
            for number, piece in enumerate(cut(parts, settings.part_size), start=1):
                await slots.acquire()  # the next piece is cut only when it can be sent
                tg.start_soon(one, number, piece)
    return [results[n] for n in sorted(results)]


async def download_ranges(
    size: int,
    settings: TransferSettings,
    fetch_into: Callable[[int, memoryview], Awaitable[None]],
) -> bytearray:
    """A buffer of `size` bytes filled by `fetch_into(offset, view)` calls over part-size ranges."""
    buffer = bytearray(size)
    view = memoryview(buffer)
    limiter = anyio.CapacityLimiter(settings.concurrency)

    async def one(offset: int) -> None:
        async with limiter:
            await fetch_into(offset, view[offset : offset + settings.part_size])

    with _first_error():
        async with anyio.create_task_group() as tg:
            for offset in range(0, size, settings.part_size):
                tg.start_soon(one, offset)
    return buffer


async def gather(calls: Sequence[Callable[[], Awaitable[T]]], limit: int = 64) -> list[T]:
    """Await every call, `limit` at a time (by `limit` workers, not one task per call), and
    return the results in order."""
    results: list[Any] = [None] * len(calls)
    queue = iter(range(len(calls)))

    async def worker() -> None:
        for i in queue:  # the workers share one iterator: each index is taken once
            results[i] = await calls[i]()

    with _first_error():
        async with anyio.create_task_group() as tg:
            for _ in range(min(limit, len(calls))):
                tg.start_soon(worker)
    return results


@contextlib.contextmanager
def _first_error() -> Iterator[None]:
    """One failed piece of a transfer raises its own error, not a group of one."""
    try:
        yield
    except BaseExceptionGroup as group:
        leaf = first_error(group)
        if isinstance(leaf, Exception):
            raise leaf from None
        raise


async def with_retries(
    action: Callable[[], Awaitable[T]],
    retryable: Callable[[BaseException], bool],
    attempts: int = 6,
    base_delay: float = 0.2,
) -> T:
    """Run `action`, retrying what `retryable` says is transient, with full-jitter backoff."""
    for attempt in range(attempts):
        try:
            return await action()
        except Exception as e:
            if attempt == attempts - 1 or not retryable(e):
                raise
            await anyio.sleep(random.uniform(0, base_delay * 2**attempt))
    raise AssertionError("unreachable")
