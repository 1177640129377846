"""`S3`: the synchronous client a step uses (`with S3(run=self) as s3: s3.put("x", b"...")`).

Each call runs the matching `AsyncS3` coroutine on an event loop in a background thread of this
process (started on first use, and again in a forked child, whose copy of the thread is gone), so
a step's plain code gets the async transfer path and an async caller's loop is never the one
doing the transfer. Async code that must not block its loop awaits `AsyncS3` instead.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Awaitable, Callable, Iterable
from typing import Any, TypeVar, TypeVarTuple

from anyio.from_thread import BlockingPortal

from aflow.s3.core import AsyncS3
from aflow.s3.objects import GetKey, PutValue, S3Object, S3PutObject
from aflow.stores.portal import background_portal

T = TypeVar("T")
Args = TypeVarTuple("Args")
_portal: tuple[int, BlockingPortal] | None = None
_lock = threading.Lock()


def _shared_portal() -> BlockingPortal:
    global _portal
    with _lock:
        if _portal is None or _portal[0] != os.getpid():
            _portal = (os.getpid(), background_portal("aflow-s3"))
        return _portal[1]


class S3:
    """Metaflow's S3 client: `S3(run=self)`, `S3(s3root="s3://bucket/prefix")`,
    `S3(bucket=, prefix=, run=)`, or `S3()` with full s3:// URLs. Downloads go to a temporary
    folder under `tmproot` that `close()` (or leaving the `with` block) deletes."""

    def __init__(
        self,
        tmproot: str = ".",
        bucket: str | None = None,
        prefix: str | None = None,
        run: Any = None,
        s3root: str | None = None,
        encryption: str | None = None,
        **client_options: Any,
    ) -> None:
        self._async = AsyncS3(tmproot, bucket, prefix, run, s3root, encryption, **client_options)

    def _call(self, fn: Callable[[*Args], Awaitable[T]], *args: *Args) -> T:
        return _shared_portal().call(fn, *args)

    def __enter__(self) -> S3:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        """Delete every file this client downloaded."""
        if _portal is not None and _portal[0] == os.getpid():
            self._call(self._async.aclose)
        else:
            self._async.remove_files()

    def __del__(self) -> None:
        # A client never closed still leaves no files behind (Metaflow's leaks them).
        try:
            self._async.remove_files()
        except Exception:
            pass

    @property
    def s3root(self) -> str | None:
        return self._async.s3root

    def get(
        self, key: GetKey = None, return_missing: bool = False, return_info: bool = True
    ) -> S3Object:
        return self._call(self._async.get, key, return_missing, return_info)

    def get_many(
        self, keys: Iterable[GetKey], return_missing: bool = False, return_info: bool = True
    ) -> list[S3Object]:
        return self._call(self._async.get_many, list(keys), return_missing, return_info)

    def get_recursive(self, keys: Iterable[str | None], return_info: bool = False) -> list[S3Object]:
        return self._call(self._async.get_recursive, list(keys), return_info)

    def get_all(self, return_info: bool = False) -> list[S3Object]:
        return self._call(self._async.get_all, return_info)

    def info(self, key: GetKey = None, return_missing: bool = False) -> S3Object:
        return self._call(self._async.info, key, return_missing)

    def info_many(self, keys: Iterable[GetKey], return_missing: bool = False) -> list[S3Object]:
        return self._call(self._async.info_many, list(keys), return_missing)

    def list_paths(self, keys: Iterable[str | None] | None = None) -> list[S3Object]:
        return self._call(self._async.list_paths, None if keys is None else list(keys))

    def list_recursive(self, keys: Iterable[str | None] | None = None) -> list[S3Object]:
        return self._call(self._async.list_recursive, None if keys is None else list(keys))

    def put(
        self,
        key: str | S3PutObject,
        obj: PutValue,
        overwrite: bool = True,
        content_type: str | None = None,
        metadata: dict[str, Any] | None = None,
    ) -> str:
        return self._call(self._async.put, key, obj, overwrite, content_type, metadata)

    def put_many(
        self, key_objs: Iterable[tuple[str, PutValue] | S3PutObject], overwrite: bool = True
    ) -> list[tuple[str, str]]:
        return self._call(self._async.put_many, list(key_objs), overwrite)

    def put_files(
        self,
        key_paths: Iterable[tuple[str, str | os.PathLike[str]] | S3PutObject],
        overwrite: bool = True,
    ) -> list[tuple[str, str]]:
        return self._call(self._async.put_files, list(key_paths), overwrite)
