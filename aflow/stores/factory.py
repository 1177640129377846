"""Opening a datastore by name: `--datastore`/`--datastore-root` (or their environment variables) to
the store that serves them. The one module that knows every implementation; the protocol in base.py
knows none of them.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass

from aflow.exception import DataStoreError
from aflow.stores.base import BlockingObjectStore, ObjectStore
from aflow.stores.settings import ROOT_VARIABLES, StoreSettings


@dataclass(frozen=True)
class RemoteKind:
    """A cloud datastore: where its class lives, its URL scheme, its root's env var, its extra."""

    module: str
    cls: str
    scheme: str
    env: str
    extra: str


REMOTE = {
    "s3": RemoteKind("aflow.stores.s3", "S3Store", "s3://", ROOT_VARIABLES["s3"], "aws"),
    "azure": RemoteKind("aflow.stores.azure", "AzureStore", "az://", ROOT_VARIABLES["azure"], "azure"),
    "gs": RemoteKind("aflow.stores.gcs", "GCSStore", "gs://", ROOT_VARIABLES["gs"], "gcp"),
}


def default_datastore() -> str:
    return StoreSettings.from_env().default_datastore


def open_store(datastore: str | None, root: str | None) -> ObjectStore:
    """The store for `--datastore` and `--datastore-root` (or the datastore's environment variable).

    Opening touches no network: `await store.check()` says whether the store can be used.
    """
    settings = StoreSettings.from_env()
    datastore = datastore or settings.default_datastore
    if datastore == "local":
        from aflow.stores.local import LocalStore, default_local_root

        return LocalStore(root or default_local_root(settings))
    kind = REMOTE.get(datastore)
    if kind is None:
        known = ", ".join(["local", *REMOTE])
        raise DataStoreError(f"--datastore {datastore}: no such datastore (known: {known})")
    root = root or settings.root(datastore)
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
