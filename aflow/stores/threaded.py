"""An async ObjectStore over a synchronous one: each operation is one hop to a worker thread.

This is how the engine uses stores whose natural interface is blocking (the local filesystem): the
event loop never waits on the disk, and the task runtime keeps the plain synchronous object.
"""

from __future__ import annotations

from collections.abc import Sequence

import anyio.to_thread

from aflow.stores.base import BlockingObjectStore, Buffer, StoreBase


class ThreadedStore(StoreBase):
    def __init__(self, sync: BlockingObjectStore) -> None:
        self.sync = sync
        self.url = sync.url
        self.local = sync.local

    async def put(self, key: str, parts: Sequence[Buffer]) -> None:
        await anyio.to_thread.run_sync(self.sync.put, key, parts)

    async def get(self, key: str) -> Buffer:
        return await anyio.to_thread.run_sync(self.sync.get, key)

    async def get_range(self, key: str, start: int, length: int) -> bytes:
        return await anyio.to_thread.run_sync(self.sync.get_range, key, start, length)

    async def exists(self, key: str) -> bool:
        return await anyio.to_thread.run_sync(self.sync.exists, key)

    async def list(self, prefix: str) -> list[str]:
        return await anyio.to_thread.run_sync(self.sync.list, prefix)

    def blocking(self) -> BlockingObjectStore:
        return self.sync

    async def check(self) -> None:
        pass

    async def aclose(self) -> None:
        pass
