"""An in-memory datastore: the store contract held in a dict, for tests and for runs nobody reads back.

It keeps everything in this process and loses it when the process ends, so only code running in
this process can use it: the engine with an in-process backend (`aflow.backends.mock.MockBackend`),
never task processes or containers. `put` copies its parts into one immutable `bytes` under a lock,
so a reader sees a whole object or none, as every store must. No operation ever waits, so the async
face awaits nothing and costs no thread hop.
"""

from __future__ import annotations

import itertools
import threading
from collections.abc import Sequence

from aflow.stores.base import BlockingObjectStore, BlockingStoreBase, Buffer, NotFound, StoreBase

_names = itertools.count(1)


class MemoryFiles(BlockingStoreBase):
    """The synchronous store over a dict of key -> bytes (also the store's `blocking()` view)."""

    def __init__(self, url: str) -> None:
        self.url = url
        self._objects: dict[str, bytes] = {}
        self._lock = threading.Lock()  # the sync view may be used from worker threads

    def put(self, key: str, parts: Sequence[Buffer]) -> None:
        data = b"".join(memoryview(p).cast("B") for p in parts)
        with self._lock:
            self._objects[key] = data

    def get(self, key: str) -> Buffer:
        with self._lock:
            data = self._objects.get(key)
        if data is None:
            raise NotFound(f"{self.url}/{key}")
        return bytearray(data)  # writable, as every store's get returns, and the stored copy stays

    def get_range(self, key: str, start: int, length: int) -> bytes:
        with self._lock:
            data = self._objects.get(key)
        if data is None:
            raise NotFound(f"{self.url}/{key}")
        return data[start : start + length]

    def exists(self, key: str) -> bool:
        with self._lock:
            return key in self._objects

    def keys(self) -> list[str]:
        """Every key held, sorted (for tests that look at what a run wrote)."""
        with self._lock:
            return sorted(self._objects)

    def list(self, prefix: str) -> list[str]:
        below = f"{prefix.strip('/')}/" if prefix.strip("/") else ""
        with self._lock:
            keys = [k for k in self._objects if k.startswith(below)]
        return sorted({k[len(below) :].split("/", 1)[0] for k in keys})


class MemoryStore(StoreBase):
    """The in-memory datastore as an async ObjectStore; `MemoryStore()` is a fresh, empty one."""

    def __init__(self, name: str | None = None) -> None:
        self.files = MemoryFiles(f"memory://{name or next(_names)}")
        self.url = self.files.url

    async def put(self, key: str, parts: Sequence[Buffer]) -> None:
        self.files.put(key, parts)

    async def get(self, key: str) -> Buffer:
        return self.files.get(key)

    async def get_range(self, key: str, start: int, length: int) -> bytes:
        return self.files.get_range(key, start, length)

    async def exists(self, key: str) -> bool:
        return self.files.exists(key)

    def keys(self) -> list[str]:
        return self.files.keys()

    async def list(self, prefix: str) -> list[str]:
        return self.files.list(prefix)

    def blocking(self) -> BlockingObjectStore:
        return self.files

    async def check(self) -> None:
        pass

    async def aclose(self) -> None:
        pass
