"""The object-store protocol every datastore implements (local, S3, Azure Blob, GCS), and opening one.

A store holds bytes under slash-separated keys and nothing else: it knows no artifacts, records or
runs. `put` is all-or-nothing: a reader sees the whole object or none of it. The async methods serve
the engine and the client; `blocking()` gives the same operations to the task runtime, which runs the
user's (synchronous) step code and has no event loop of its own to await on.
"""

from __future__ import annotations

import importlib
import mmap
import os
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

from aflow.exception import AflowNotFound, DataStoreError

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

    async def check(self) -> None:
        """Raise DataStoreError saying what to fix when the store cannot be used (no bucket,
        no credentials, unreachable endpoint); called before a run writes anything."""
        ...

    async def aclose(self) -> None:
        """Let go of clients and connections."""
        ...


@dataclass(frozen=True)
class RemoteKind:
    """A cloud datastore: where its class lives, its URL scheme, its root's env var, its extra."""

    module: str
    cls: str
    scheme: str
    env: str
    extra: str


REMOTE = {
    "s3": RemoteKind("aflow.stores.s3", "S3Store", "s3://", "AFLOW_DATASTORE_SYSROOT_S3", "aws"),
    "azure": RemoteKind(
        "aflow.stores.azure", "AzureStore", "az://", "AFLOW_DATASTORE_SYSROOT_AZURE", "azure"
    ),
    "gs": RemoteKind("aflow.stores.gcs", "GCSStore", "gs://", "AFLOW_DATASTORE_SYSROOT_GS", "gcp"),
}


def default_datastore() -> str:
    return os.environ.get("AFLOW_DEFAULT_DATASTORE") or "local"


def open_store(datastore: str | None, root: str | None) -> ObjectStore:
    """The store for `--datastore` and `--datastore-root` (or the datastore's environment variable).

    Opening touches no network: `await store.check()` says whether the store can be used.
    """
    datastore = datastore or default_datastore()
    if datastore == "local":
        from aflow.stores.local import LocalStore, default_local_root

        return LocalStore(root or default_local_root())
    kind = REMOTE.get(datastore)
    if kind is None:
        known = ", ".join(["local", *REMOTE])
        raise DataStoreError(f"--datastore {datastore}: no such datastore (known: {known})")
    root = root or os.environ.get(kind.env)
    if not root:
        raise DataStoreError(
            f"--datastore {datastore} needs a root: pass --datastore-root {kind.scheme}BUCKET/PREFIX "
            f"or set {kind.env}"
        )
    if not root.startswith(kind.scheme):
        raise DataStoreError(
            f"--datastore {datastore} takes a root like {kind.scheme}BUCKET/PREFIX, not {root!r}"
        )
    try:
        module = importlib.import_module(kind.module)
    except ImportError as e:
        from aflow.install_hint import needs_extra

        raise DataStoreError(f"{needs_extra(f'--datastore {datastore}', kind.extra)} ({e})") from None
    store: ObjectStore = getattr(module, kind.cls)(root)
    return store


def open_blocking_store(datastore: str, root: str | None) -> BlockingObjectStore:
    """The same store for a task process, synchronous. A cloud store runs on an event loop thread
    of its own, started on first use (so the warm parent can open one before it forks)."""
    if datastore == "local":
        from aflow.stores.local import LocalFiles, default_local_root

        return LocalFiles(root or default_local_root())
    from aflow.stores.portal import PortalBlockingStore

    return PortalBlockingStore(lambda: open_store(datastore, root))
