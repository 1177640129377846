"""The object-store protocol every datastore implements (local, S3, Azure Blob, GCS).

A store holds bytes under slash-separated keys and nothing else: it knows no artifacts, records or
runs. `put` is all-or-nothing: a reader sees the whole object or none of it. The async methods serve
the engine and the client; `blocking()` gives the same operations to the task runtime, which runs the
user's (synchronous) step code and has no event loop of its own to await on.
"""

from __future__ import annotations

import mmap
from collections.abc import Sequence
from typing import Protocol

from aflow.exception import AflowNotFound

Buffer = bytes | bytearray | memoryview | mmap.mmap


class NotFound(AflowNotFound):
    headline = "not in the datastore"

    def __init__(self, url: str) -> None:
        self.url = url
        super().__init__(f"{url} does not exist")


def store_path(url: str, key: str) -> str:
    """Where `key` lives, for messages: a file path or an object URL."""
    return f"{url.rstrip('/')}/{key}"


class BlockingObjectStore(Protocol):
    url: str
    local: bool  # on this machine's disk: reading back what is stored is cheap

    def put(self, key: str, parts: Sequence[Buffer]) -> None: ...
    def get(self, key: str) -> Buffer: ...
    def get_range(self, key: str, start: int, length: int) -> bytes: ...
    def exists(self, key: str) -> bool: ...
    def list(self, prefix: str) -> list[str]: ...

    def close(self) -> None:
        """Let go of what the store holds (a cloud store's event loop thread and clients)."""
        ...


class BlockingStoreBase:
    """The parts of BlockingObjectStore a store may leave out: not local, nothing to close."""

    local = False

    def close(self) -> None:
        pass


class ObjectStore(Protocol):
    """Async access to one datastore root."""

    url: str
    local: bool  # on this machine's disk: reading back what is stored is cheap

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

    async def check(self) -> None:
        """Raise DataStoreError saying what to fix when the store cannot be used (no bucket,
        no credentials, unreachable endpoint); called before a run writes anything."""
        ...

    async def aclose(self) -> None:
        """Let go of clients and connections."""
        ...

    async def presigned_url(self, key: str, seconds: int) -> str | None:
        """A URL that reads `key` without credentials for `seconds`, or None where the store cannot
        make one (how a container with only Python's standard library fetches the code package)."""
        ...

    def prewarm(self) -> None:
        """Load what opening a client loads (an SDK's models), without a request, thread or loop
        left behind: called in the warm parent before it forks, so tasks do not each pay it."""
        ...


class StoreBase:
    """The parts of ObjectStore a store may leave out: not local, no presigned URLs, nothing to
    prewarm. A store subclasses it and overrides what it has."""

    local = False

    async def presigned_url(self, key: str, seconds: int) -> str | None:
        return None

    def prewarm(self) -> None:
        pass
