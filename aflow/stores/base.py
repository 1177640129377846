"""The object-store protocol every datastore implements (local now; S3, Azure, GCS later).

A store holds bytes under slash-separated keys and nothing else: it knows no artifacts, records or
runs. `put` is all-or-nothing: a reader sees the whole object or none of it. The async methods serve
the engine and the client; `blocking()` gives the same operations to the task runtime, which runs the
user's (synchronous) step code and has no event loop of its own to await on.
"""

from __future__ import annotations

import mmap
from collections.abc import Sequence
from typing import NoReturn, Protocol

from aflow.exception import AflowNotFound, DataStoreError

Buffer = bytes | bytearray | memoryview | mmap.mmap


class NotFound(AflowNotFound):
    headline = "not in the datastore"

    def __init__(self, url: str) -> None:
        self.url = url
        super().__init__(f"{url} does not exist")


class BlockingObjectStore(Protocol):
    url: str

    def put(self, key: str, parts: Sequence[Buffer]) -> None: ...
    def get(self, key: str) -> Buffer: ...
    def get_range(self, key: str, start: int, length: int) -> bytes: ...
    def exists(self, key: str) -> bool: ...
    def list(self, prefix: str) -> list[str]: ...


class ObjectStore(Protocol):
    """Async access to one datastore root."""

    url: str

    async def put(self, key: str, parts: Sequence[Buffer]) -> None:
        """Store the concatenation of `parts` under `key`, atomically."""
        ...

    async def get(self, key: str) -> Buffer:
        """The whole object as a writable bytes-like buffer; raises NotFound."""
        ...

    async def get_range(self, key: str, start: int, length: int) -> bytes: ...

    async def exists(self, key: str) -> bool: ...

    async def list(self, prefix: str) -> list[str]:
        """Names directly below `prefix` (one level, like a directory listing)."""
        ...

    def blocking(self) -> BlockingObjectStore: ...


def open_store(datastore: str, root: str | None) -> ObjectStore:
    """The store for `--datastore` and `--datastore-root`."""
    if datastore == "local":
        from aflow.stores.local import LocalStore, default_local_root

        return LocalStore(root or default_local_root())
    _unknown(datastore)


def open_blocking_store(datastore: str, root: str | None) -> BlockingObjectStore:
    """The same store for a task process: synchronous, and without loading the async machinery."""
    if datastore == "local":
        from aflow.stores.local import LocalFiles, default_local_root

        return LocalFiles(root or default_local_root())
    _unknown(datastore)


def _unknown(datastore: str) -> NoReturn:
    raise DataStoreError(
        f"--datastore {datastore} is not built yet: only the local datastore exists "
        "(see the README's list of what is not built)"
    )
