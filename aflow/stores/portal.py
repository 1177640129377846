"""A synchronous view of an async store, for the task runtime: the store runs on an event loop in
a thread of its own, and each call waits for its result there.

The thread starts on first use, never at construction, so a warm parent may open one and then fork
(threads do not survive a fork; an untouched portal has none).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Coroutine, Sequence
from typing import Any, TypeVar

import anyio
from anyio.from_thread import BlockingPortal

from aflow.stores.base import BlockingStoreBase, Buffer, ObjectStore

T = TypeVar("T")
_UNDO_GRACE = 10.0


def background_portal(name: str) -> BlockingPortal:
    """An event loop running for the rest of the process in a daemon thread, and its portal."""
    ready = threading.Event()
    box: list[BlockingPortal] = []

    async def serve() -> None:
        async with BlockingPortal() as portal:
            box.append(portal)
            ready.set()
            await portal.sleep_until_stopped()

    threading.Thread(target=anyio.run, args=(serve,), daemon=True, name=name).start()
    ready.wait()
    return box[0]


def _wait_for_undo(finished: threading.Event) -> None:
    """Wait up to _UNDO_GRACE for a cancelled call to finish undoing. Another stop signal while
    waiting (a second SIGTERM, @timeout's alarm) must not cut the wait short: the process would
    exit with the multipart upload still open. The first stop is re-raised by the caller."""
    deadline = time.monotonic() + _UNDO_GRACE
    while not finished.is_set():
        left = deadline - time.monotonic()
        if left <= 0:
            return
        try:
            finished.wait(left)
        except BaseException:  # a repeated stop: the undo still needs its time
            continue


class PortalBlockingStore(BlockingStoreBase):
    def __init__(self, factory: Callable[[], ObjectStore]) -> None:
        self._factory = factory
        self._store: ObjectStore | None = None
        self._portal: BlockingPortal | None = None
        self._lock = threading.Lock()
        self.url = ""

    def _call(self, method: str, *args: Any) -> Any:
        portal = self._start()
        assert self._store is not None
        fn: Callable[..., Coroutine[Any, Any, T]] = getattr(self._store, method)
        finished = threading.Event()

        async def call() -> Any:
            try:
                return await fn(*args)
            finally:
                finished.set()

        future = portal.start_task_soon(call)
        try:
            return future.result()
        except BaseException:
            # Stopped while waiting (the task was told to stop): cancel the call, and give it the
            # time to undo what it started (abort a multipart upload) before the store closes.
            if not future.done():
                future.cancel()
                _wait_for_undo(finished)
            raise

    def _start(self) -> BlockingPortal:
        with self._lock:
            if self._portal is None:
                self._store = self._factory()
                self.url = self._store.url
                self._portal = background_portal("aflow-store")
            return self._portal

    def put(self, key: str, parts: Sequence[Buffer]) -> None:
        self._call("put", key, parts)

    def get(self, key: str) -> Buffer:
        data: Buffer = self._call("get", key)
        return data

    def get_range(self, key: str, start: int, length: int) -> bytes:
        data: bytes = self._call("get_range", key, start, length)
        return data

    def exists(self, key: str) -> bool:
        return bool(self._call("exists", key))

    def list(self, prefix: str) -> list[str]:
        names: list[str] = self._call("list", prefix)
        return names

    def close(self) -> None:
        """Close the store's clients and stop the loop (a no-op if it never started)."""
        with self._lock:
            portal, self._portal = self._portal, None
        if portal is not None and self._store is not None:
            try:
                portal.call(self._store.aclose)
            finally:
                portal.call(portal.stop)
