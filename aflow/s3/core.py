"""`AsyncS3`: Metaflow's S3 client API as coroutines, on the S3 datastore's transfer path.

Every object moves through `aflow.stores.s3.S3Store` (one per bucket, keyed by full object key):
large objects go up as concurrent multipart uploads cut from memory and come down as concurrent
ranged reads, and many objects move `concurrency` at a time. What comes down is written to a
temporary folder (`tmproot`, the current one by default) that `aclose()` deletes. Locations
resolve as Metaflow's do: against `s3root`, against the run's own prefix (`run=`), or as full
`s3://` URLs when the client has no root.
"""

from __future__ import annotations

import contextlib
import functools
import io
import json
import mmap
import os
import re
import shutil
import tempfile
from collections.abc import AsyncIterator, Iterable, Iterator, Sequence
from typing import TYPE_CHECKING, Any

import anyio

from aflow.exception import DataStoreError
from aflow.s3.objects import (
    USER_METADATA_KEY,
    GetKey,
    MetaflowS3AccessDenied,
    MetaflowS3Exception,
    MetaflowS3InvalidObject,
    MetaflowS3InvalidRange,
    MetaflowS3NotFound,
    MetaflowS3URLException,
    PutValue,
    RangeInfo,
    S3GetObject,
    S3Object,
    S3PutObject,
)
from aflow.s3.roots import run_root
from aflow.stores.base import NotFound
from aflow.stores.transfer import gather

if TYPE_CHECKING:  # the aws extra is needed only once the client is used
    from aflow.stores.s3 import S3Store

_CONTENT_RANGE = re.compile(r"bytes (\d+)-(\d+)/(\d+)")
# Objects moved at once by the *_many calls; each large one is itself split into ranges or parts.
MANY_AT_ONCE = 32


def split_url(url: str) -> tuple[str, str]:
    bucket, _, key = url.removeprefix("s3://").partition("/")
    return bucket, key


class AsyncS3:
    """`async with AsyncS3(s3root="s3://bucket/prefix") as s3: obj = await s3.get("key")`."""

    def __init__(
        self,
        tmproot: str = ".",
        bucket: str | None = None,
        prefix: str | None = None,
        run: Any = None,
        s3root: str | None = None,
        encryption: str | None = None,
        **_client_options: Any,
    ) -> None:
        if run is not None:
            self._s3root: str | None = run_root(run, bucket, prefix)
        elif s3root:
            if not s3root.startswith("s3://"):
                raise MetaflowS3URLException(f"s3root={s3root!r}: give an S3 URL, s3://bucket/prefix")
            self._s3root = s3root.rstrip("/")
        else:
            self._s3root = None
        self._encryption = encryption or os.environ.get("AFLOW_S3_SERVER_SIDE_ENCRYPTION") or None
        self._tmpdir: str | None = tempfile.mkdtemp(dir=tmproot, prefix="aflow.s3.")
        self._stores: dict[str, S3Store] = {}

    async def __aenter__(self) -> AsyncS3:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        """Delete every file this client downloaded, and let go of its connections."""
        stores, self._stores = self._stores, {}
        for store in stores.values():
            with contextlib.suppress(Exception):
                await store.aclose()
        self.remove_files()

    def remove_files(self) -> None:
        tmpdir, self._tmpdir = self._tmpdir, None
        if tmpdir:
            shutil.rmtree(tmpdir, ignore_errors=True)

    # -- locations --------------------------------------------------------------------------------

    @property
    def s3root(self) -> str | None:
        return self._s3root

    def url(self, key: GetKey | S3PutObject) -> str:
        """The full URL of a key (a string, an S3GetObject/S3PutObject, or None for the root)."""
        name = key.key if isinstance(key, S3GetObject | S3PutObject) else key
        if self._s3root is None:
            if isinstance(name, str) and name.startswith("s3://") and split_url(name)[1]:
                return name
            from aflow.current import current

            if current.is_running_flow:
                raise MetaflowS3URLException(
                    f"{name!r} is not a full s3:// URL: inside a step use S3(run=self) for the "
                    "run's own prefix, or S3(s3root='s3://bucket/prefix'), or full s3:// URLs"
                )
            raise MetaflowS3URLException(
                f"{name!r} is not a full s3:// URL: give S3(s3root=...) or S3(run=...) to use "
                "keys relative to a prefix"
            )
        if name:
            if name.startswith("s3://"):
                raise MetaflowS3URLException(
                    f"{name!r}: this client has the prefix {self._s3root}, so give keys relative "
                    "to it, not full s3:// URLs"
                )
            return f"{self._s3root}/{name.lstrip('/')}"
        return self._s3root

    def _store(self, bucket: str) -> S3Store:
        if bucket not in self._stores:
            try:
                from aflow.stores.s3 import S3Store
            except ImportError as e:
                raise MetaflowS3Exception(
                    f"S3 needs the 'aws' extra: pip install 'aflow[aws]' ({e})"
                ) from None

            self._stores[bucket] = S3Store(f"s3://{bucket}")
        return self._stores[bucket]

    @contextlib.asynccontextmanager
    async def _errors(self, url: str) -> AsyncIterator[None]:
        # botocore ships no type information (its stubs are not a dependency): ClientError is Any.
        from botocore.exceptions import ClientError  # type: ignore[import-untyped]

        try:
            yield
        except NotFound:
            raise MetaflowS3NotFound(f"{url} does not exist") from None
        except ClientError as e:
            code = str(e.response.get("Error", {}).get("Code", ""))
            if code in ("NoSuchKey", "404", "NotFound", "NoSuchBucket"):
                raise MetaflowS3NotFound(f"{url} does not exist") from None
            if code in ("403", "AccessDenied"):
                raise MetaflowS3AccessDenied(f"no access to {url} with these AWS credentials") from None
            if code == "InvalidRange":
                raise MetaflowS3InvalidRange(
                    f"{url}: the range asked for is not in the object"
                ) from None
            raise MetaflowS3Exception(f"S3 refused {url}: {e}") from None
        except DataStoreError as e:
            if "does not exist" in str(e):
                raise MetaflowS3NotFound(str(e)) from None
            if "no access" in str(e):
                raise MetaflowS3AccessDenied(str(e)) from None
            raise MetaflowS3Exception(str(e)) from None

    def _tmp_file(self, data: bytes | bytearray) -> str:
        if self._tmpdir is None:
            raise MetaflowS3Exception("this S3 client is closed: open a new one")
        fd, path = tempfile.mkstemp(dir=self._tmpdir, prefix="aflow.s3.get.")
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        return path

    # -- reading ---------------------------------------------------------------------------------

    async def get(
        self, key: GetKey = None, return_missing: bool = False, return_info: bool = True
    ) -> S3Object:
        """One object, downloaded to a temporary file (`.path`, `.blob`, `.text`)."""
        return await self._fetch(*self._wanted(key), return_missing, return_info, self._s3root)

    def _wanted(self, key: GetKey) -> tuple[str, int | None, int | None]:
        """The URL, offset and length a get asks for."""
        if isinstance(key, S3GetObject):
            return self.url(key), key.offset, key.length
        return self.url(key), None, None

    async def get_many(
        self, keys: Iterable[GetKey], return_missing: bool = False, return_info: bool = True
    ) -> list[S3Object]:
        """Many objects, concurrently; in the order asked."""
        wanted = [self._wanted(k) for k in keys]
        return await gather(
            [
                functools.partial(self._fetch, *w, return_missing, return_info, self._s3root)
                for w in wanted
            ],
            MANY_AT_ONCE,
        )

    async def get_recursive(
        self, keys: Iterable[str | None], return_info: bool = False
    ) -> list[S3Object]:
        """Every object under each of these prefixes."""
        listed = await self.list_recursive(keys)
        return await gather(
            [
                functools.partial(
                    self._fetch,
                    o.url,
                    None,
                    None,
                    False,
                    return_info,
                    self._s3root if return_info else o.prefix,
                )
                for o in listed
            ],
            MANY_AT_ONCE,
        )

    async def get_all(self, return_info: bool = False) -> list[S3Object]:
        """Every object under the client's prefix."""
        if self._s3root is None:
            raise MetaflowS3URLException(
                "get_all() needs a client with a prefix: S3(s3root=...) or run="
            )
        return await self.get_recursive([None], return_info)

    async def _fetch(
        self,
        url: str,
        offset: int | None,
        length: int | None,
        return_missing: bool,
        return_info: bool,
        prefix: str | None,
    ) -> S3Object:
        bucket, key = split_url(url)
        store = self._store(bucket)
        data: bytes | bytearray
        try:
            async with self._errors(url):
                if offset is None and length is None:
                    data, info = await store.get_with_info(key)
                    size = len(data)
                    range_info = RangeInfo(size, 0, size)
                else:
                    data, info, range_info = await self._get_range(store, key, offset, length)
        except MetaflowS3NotFound:
            if return_missing:
                return S3Object(prefix, url, None)
            raise
        path = await anyio.to_thread.run_sync(self._tmp_file, data)
        if not return_info:
            return S3Object(prefix, url, path)
        return S3Object(
            prefix,
            url,
            path,
            content_type=info.get("ContentType"),
            metadata=info.get("Metadata") or {},
            range_info=range_info,
            last_modified=_timestamp(info.get("LastModified")),
            encryption=info.get("ServerSideEncryption"),
        )

    async def _get_range(
        self, store: S3Store, key: str, offset: int | None, length: int | None
    ) -> tuple[bytes, dict[str, Any], RangeInfo]:
        start = offset or 0
        if length is None:
            wanted = f"bytes={start}-"
        elif length < 0:
            wanted = f"bytes=-{-length}"
        else:
            wanted = f"bytes={start}-{start + length - 1}"
        client = await store._client()
        got = await client.get_object(Bucket=store.bucket, Key=key, Range=wanted)
        body = got.pop("Body")
        async with body:
            data = await body.read()
        match = _CONTENT_RANGE.match(got.get("ContentRange") or "")
        if match:
            first, last, total = (int(g) for g in match.groups())
            range_info = RangeInfo(total, first, last - first + 1)
        else:  # the server sent the whole object
            range_info = RangeInfo(len(data), 0, len(data))
        return data, got, range_info

    async def info(self, key: GetKey = None, return_missing: bool = False) -> S3Object:
        """What S3 knows of one object (one HEAD request; nothing downloaded)."""
        return await self._info(self.url(key), return_missing)

    async def info_many(
        self, keys: Iterable[GetKey], return_missing: bool = False
    ) -> list[S3Object]:
        urls = [self.url(k) for k in keys]
        return await gather(
            [functools.partial(self._info, u, return_missing) for u in urls], MANY_AT_ONCE
        )

    async def _info(self, url: str, return_missing: bool) -> S3Object:
        bucket, key = split_url(url)
        store = self._store(bucket)
        try:
            async with self._errors(url):
                client = await store._client()
                head = await client.head_object(Bucket=bucket, Key=key)
        except MetaflowS3NotFound:
            if return_missing:
                return S3Object(self._s3root, url, None)
            raise
        return S3Object(
            self._s3root,
            url,
            None,
            size=head["ContentLength"],
            content_type=head.get("ContentType"),
            metadata=head.get("Metadata") or {},
            last_modified=_timestamp(head.get("LastModified")),
            encryption=head.get("ServerSideEncryption"),
        )

    # -- listing ---------------------------------------------------------------------------------

    async def list_paths(self, keys: Iterable[str | None] | None = None) -> list[S3Object]:
        """The next level below each prefix: objects (`exists`) and sub-prefixes (not)."""
        found: list[S3Object] = []
        for key in [None] if keys is None else keys:
            url = self.url(key).rstrip("/") + "/"
            found.extend(await self._list(url, delimiter="/"))
        return found

    async def list_recursive(self, keys: Iterable[str | None] | None = None) -> list[S3Object]:
        """Every object below each prefix, at any depth."""
        found: list[S3Object] = []
        for key in [None] if keys is None else keys:
            found.extend(await self._list(self.url(key), delimiter=""))
        return found

    async def _list(self, url: str, delimiter: str) -> list[S3Object]:
        bucket, prefix = split_url(url)
        store = self._store(bucket)
        found: list[S3Object] = []
        async with self._errors(url):
            client = await store._client()
            pages = client.get_paginator("list_objects_v2").paginate(
                Bucket=bucket, Prefix=prefix, Delimiter=delimiter
            )
            async for page in pages:
                for item in page.get("Contents", []):
                    found.append(S3Object(url, f"s3://{bucket}/{item['Key']}", None, item["Size"]))
                for common in page.get("CommonPrefixes", []):
                    found.append(S3Object(url, f"s3://{bucket}/{common['Prefix']}", None))
        return found

    # -- writing ---------------------------------------------------------------------------------

    async def put(
        self,
        key: str | S3PutObject,
        obj: PutValue,
        overwrite: bool = True,
        content_type: str | None = None,
        metadata: dict[str, Any] | None = None,
    ) -> str:
        """Store `obj` (str, bytes, or a readable file) at `key`; returns its URL."""
        url = self.url(key)
        data = await anyio.to_thread.run_sync(_bytes_of, key, obj)
        await self._put(url, [data], overwrite, content_type, metadata, None)
        return url

    async def put_many(
        self, key_objs: Iterable[tuple[str, PutValue] | S3PutObject], overwrite: bool = True
    ) -> list[tuple[str, str]]:
        """Store many (key, obj) pairs or S3PutObjects, concurrently; returns (key, url) pairs."""
        items = [_put_item(k) for k in key_objs]

        async def one(item: S3PutObject) -> tuple[str, str] | None:
            url = self.url(item.key)
            data = await anyio.to_thread.run_sync(_bytes_of, item.key, item.value)
            if await self._put(
                url, [data], overwrite, item.content_type, item.metadata, item.encryption
            ):
                return item.key, url
            return None

        done = await gather([functools.partial(one, i) for i in items], MANY_AT_ONCE)
        return [d for d in done if d is not None]

    async def put_files(
        self,
        key_paths: Iterable[tuple[str, str | os.PathLike[str]] | S3PutObject],
        overwrite: bool = True,
    ) -> list[tuple[str, str]]:
        """Upload local files: (key, path) pairs or S3PutObject(key, path=...)."""
        items = [_put_file_item(k) for k in key_paths]
        for item in items:
            if not item.path or not await anyio.Path(item.path).exists():
                raise MetaflowS3NotFound(f"local file not found: {item.path} (for key {item.key!r})")

        async def one(item: S3PutObject) -> tuple[str, str] | None:
            url = self.url(item.key)
            assert item.path is not None
            with _mapped(item.path) as data:  # sent straight from the page cache
                sent = await self._put(
                    url, [data], overwrite, item.content_type, item.metadata, item.encryption
                )
            return (item.key, url) if sent else None

        done = await gather([functools.partial(one, i) for i in items], MANY_AT_ONCE)
        return [d for d in done if d is not None]

    async def _put(
        self,
        url: str,
        parts: Sequence[Any],
        overwrite: bool,
        content_type: str | None,
        metadata: dict[str, Any] | None,
        encryption: str | None,
    ) -> bool:
        bucket, key = split_url(url)
        if not key:
            raise MetaflowS3URLException(f"{url} names no object: give a key below the bucket")
        store = self._store(bucket)
        if not overwrite and (await self._info(url, return_missing=True)).exists:
            return False
        extra: dict[str, Any] = {}
        if content_type:
            extra["ContentType"] = content_type
        if metadata:
            extra["Metadata"] = {USER_METADATA_KEY: json.dumps(metadata)}
        if encryption or self._encryption:
            extra["ServerSideEncryption"] = encryption or self._encryption
        async with self._errors(url):
            await store.put(key, parts, extra)
        return True


def _put_item(entry: tuple[str, PutValue] | S3PutObject) -> S3PutObject:
    if isinstance(entry, S3PutObject):
        return entry
    key, value = entry
    return S3PutObject(key, value)


def _put_file_item(entry: tuple[str, str | os.PathLike[str]] | S3PutObject) -> S3PutObject:
    if isinstance(entry, S3PutObject):
        return entry
    key, path = entry
    return S3PutObject(key, path=os.fspath(path))


def _bytes_of(key: Any, obj: Any) -> bytes | bytearray | memoryview:
    if isinstance(obj, str):
        return obj.encode("utf-8")
    if isinstance(obj, (bytes, bytearray, memoryview)):
        return obj
    if isinstance(obj, io.IOBase) or hasattr(obj, "read"):
        if hasattr(obj, "readable") and not obj.readable():
            raise MetaflowS3InvalidObject(
                f"the object for key {getattr(key, 'key', key)!r} is not readable"
            )
        if hasattr(obj, "seek"):
            obj.seek(0)
        data = obj.read()
        return data.encode("utf-8") if isinstance(data, str) else data
    raise MetaflowS3InvalidObject(
        f"the object for key {getattr(key, 'key', key)!r} is {type(obj).__name__}: "
        "put takes str, bytes or a readable file (pickle other values first)"
    )


@contextlib.contextmanager
def _mapped(path: str) -> Iterator[bytes | mmap.mmap]:
    with open(path, "rb") as f:
        if os.fstat(f.fileno()).st_size == 0:
            yield b""  # an empty file cannot be mapped
            return
        m = mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ)
        try:
            yield m
        finally:
            with contextlib.suppress(BufferError):  # a view still held: the collector closes it
                m.close()


def _timestamp(value: Any) -> int | None:
    return int(value.timestamp()) if value is not None and hasattr(value, "timestamp") else None
