"""The Google Cloud Storage datastore (`gs://BUCKET/PREFIX`) on gcloud-aio-storage.

A key "Flow/run/step/..." is the object PREFIX/key. Small objects go up in one request. An object
larger than the transfer threshold is a parallel composite upload: its parts are uploaded
concurrently as temporary objects below PREFIX/.aflow-uploads/ (each a bounded copy of one part,
at most AFLOW_TRANSFER_CONCURRENCY at a time), composed server-side into the final object (32
sources per compose, in a tree beyond that), and deleted. The object appears whole or not at all:
a failed or cancelled upload deletes its parts and never touches the target. Reads ask for the
first part with a Range header, which for a small object is the whole download; a larger one is
fetched as concurrent ranged reads into one preallocated buffer (not pinned to one generation:
aflow's large objects are content-addressed blobs, never rewritten with other bytes). Transient
failures (408, 429, 5xx, dropped connections, timeouts) are retried per request with jittered
backoff by transfer.with_retries; the library's own retry (resumable uploads only) is never used.

Credentials are Application Default Credentials as gcloud-aio-auth finds them
(GOOGLE_APPLICATION_CREDENTIALS, the gcloud ADC file, or the GCE metadata server); with
STORAGE_EMULATOR_HOST set, the emulator there is used and no credentials are needed. Note for real
buckets: deleted upload parts count against the bucket's soft-delete retention (7 days by
default), so a datastore bucket should have soft delete off or short, and a lifecycle rule on
PREFIX/.aflow-uploads/ removes parts left by a killed process.

Constructing a store touches no network and starts nothing (a warm parent opens stores before it
forks): the client and its aiohttp session are made on first use, one per event loop. asyncio only.
This module must not import other stores or anything above aflow.stores.
"""

from __future__ import annotations

import asyncio
import os
import uuid
from collections.abc import Awaitable, Callable, Sequence
from typing import Any, TypeVar

import aiohttp
import anyio
from gcloud.aio.auth.token import GCE_METADATA_BASE, GCE_METADATA_HEADERS, Type
from gcloud.aio.storage import Storage

from aflow.exception import DataStoreError, first_error
from aflow.stores import transfer
from aflow.stores.base import BlockingObjectStore, Buffer, NotFound, StoreBase

T = TypeVar("T")

SCHEME = "gs://"
UPLOADS = ".aflow-uploads"  # below the root: parts of composite uploads in flight
COMPOSE_MAX = 32  # sources per compose request (a GCS limit)
OCTET = "application/octet-stream"
REQUEST_TIMEOUT = 300  # seconds for one request, body included (a part is at most part_size)
CHECK_TIMEOUT = 30
RETRY_STATUS = frozenset({408, 429, 500, 502, 503, 504})
CREDENTIALS_FIX = (
    "set GOOGLE_APPLICATION_CREDENTIALS to a service account key file, run "
    "`gcloud auth application-default login`, or run on Google Cloud with a service account "
    "(for an emulator, set STORAGE_EMULATOR_HOST=http://HOST:PORT instead)"
)


def _retryable(e: BaseException) -> bool:
    if isinstance(e, aiohttp.ClientResponseError):
        return e.status in RETRY_STATUS or e.status >= 500
    return isinstance(e, aiohttp.ClientError | ConnectionError | TimeoutError)


def _endpoint() -> str:
    return os.environ.get("STORAGE_EMULATOR_HOST") or "https://storage.googleapis.com"


class GCSStore(StoreBase):
    """An ObjectStore over one bucket and prefix."""

    def __init__(self, url: str) -> None:
        if not url.startswith(SCHEME):
            raise DataStoreError(f"a GCS datastore root looks like gs://BUCKET/PREFIX, not {url!r}")
        bucket, _, prefix = url[len(SCHEME) :].partition("/")
        if not bucket:
            raise DataStoreError(f"{url!r} names no bucket: use gs://BUCKET/PREFIX")
        self.bucket = bucket
        self.prefix = prefix.strip("/")
        self.url = f"{SCHEME}{bucket}/{self.prefix}" if self.prefix else f"{SCHEME}{bucket}"
        self.settings = transfer.TransferSettings.from_env()
        self._clients: dict[asyncio.AbstractEventLoop, Storage] = {}
        self._pid = os.getpid()

    # -- names and clients

    def _name(self, key: str) -> str:
        key = key.strip("/")
        return f"{self.prefix}/{key}" if self.prefix else key

    def _url(self, key: str) -> str:
        return f"{SCHEME}{self.bucket}/{self._name(key)}"

    def _storage(self) -> Storage:
        if os.getpid() != self._pid:  # a forked child: the parent's clients are not ours
            self._clients = {}
            self._pid = os.getpid()
        loop = asyncio.get_running_loop()
        storage = self._clients.get(loop)
        if storage is None:
            # Forget clients of loops that have ended (nothing can close them any more).
            self._clients = {k: v for k, v in self._clients.items() if not k.is_closed()}
            path = os.environ.get("GOOGLE_APPLICATION_CREDENTIALS")
            where = f"GOOGLE_APPLICATION_CREDENTIALS={path}" if path else "the gcloud ADC file"
            if path and not os.path.isfile(path):  # before the client opens a session to leak
                raise DataStoreError(f"{where}: no such file: {CREDENTIALS_FIX}")
            try:
                storage = Storage()
            except (OSError, ValueError) as e:
                raise DataStoreError(
                    f"cannot load Google Cloud credentials from {where} ({e}): {CREDENTIALS_FIX}"
                ) from None
            self._clients[loop] = storage
        return storage

    # -- one request: retries, and errors that say what to fix

    async def _request(
        self,
        what: str,
        action: Callable[[], Awaitable[T]],
        missing: Callable[[], Exception] | None = None,
    ) -> T:
        try:
            return await transfer.with_retries(action, _retryable)
        except aiohttp.ClientResponseError as e:
            if e.status == 404 and missing is not None:
                raise missing() from None
            raise self._failure(what, e) from e
        except (aiohttp.ClientError, OSError, TimeoutError) as e:
            raise self._failure(what, e) from e

    def _failure(self, what: str, e: Exception) -> DataStoreError:
        if isinstance(e, aiohttp.ClientResponseError):
            detail = str(e.message)[:400]
            if e.status == 404:
                return DataStoreError(
                    f"{what}: the GCS bucket '{self.bucket}' does not exist: create it "
                    f"(gcloud storage buckets create gs://{self.bucket}) or point --datastore-root "
                    "or AFLOW_DATASTORE_SYSROOT_GS at an existing bucket"
                )
            if e.status in (401, 403):
                return DataStoreError(
                    f"{what}: GCS refused ({e.status} {detail}): give the credentials access to "
                    f"gs://{self.bucket} (object read, write and list), or {CREDENTIALS_FIX}"
                )
            return DataStoreError(f"{what}: GCS answered {e.status}: {detail}")
        hint = (
            "is the emulator running at STORAGE_EMULATOR_HOST?"
            if os.environ.get("STORAGE_EMULATOR_HOST")
            else "check the network and any proxy settings"
        )
        return DataStoreError(f"{what}: cannot reach GCS at {_endpoint()} ({e!r}): {hint}")

    def _not_found(self, key: str) -> Callable[[], Exception]:
        return lambda: NotFound(self._url(key))

    # -- writing

    async def _upload(self, name: str, data: bytes) -> None:
        await self._storage().upload(
            self.bucket,
            name,
            data,
            content_type=OCTET,
            force_resumable_upload=False,
            # An empty object goes as a multipart upload (metadata + no bytes): equivalent on
            # GCS, and gcp-storage-emulator drops the connection on an empty media upload.
            metadata=None if data else {"metadata": {"aflow": "empty"}},
            timeout=REQUEST_TIMEOUT,
        )

    async def put(self, key: str, parts: Sequence[Buffer]) -> None:
        name = self._name(key)
        if transfer.total_size(parts) <= self.settings.threshold:
            data = transfer.join(parts)
            await self._request(f"writing {self._url(key)}", lambda: self._upload(name, data))
            return
        try:
            await self._put_composite(key, parts)
        except BaseExceptionGroup as group:
            raise first_error(group) from None

    async def _put_composite(self, key: str, parts: Sequence[Buffer]) -> None:
        what = f"writing {self._url(key)}"
        folder = f"{self._name(UPLOADS)}/{uuid.uuid4().hex}"
        made: list[str] = []  # temporary objects that may exist, deleted whatever happens

        async def send(number: int, piece: Buffer) -> str:
            part = f"{folder}/{number:06d}"
            data = piece if isinstance(piece, bytes) else bytes(piece)  # one part, bounded
            made.append(part)
            await self._request(what, lambda: self._upload(part, data))
            return part

        try:
            sources = await transfer.upload_parts(parts, self.settings, send)
            level = 0
            while len(sources) > COMPOSE_MAX:  # a tree: 32 parts into each intermediate object
                groups = [sources[i : i + COMPOSE_MAX] for i in range(0, len(sources), COMPOSE_MAX)]
                sources = [f"{folder}/c{level}-{i:06d}" for i in range(len(groups))]
                made.extend(sources)
                await self._compose_many(what, list(zip(sources, groups, strict=True)))
                level += 1
            await self._compose(what, self._name(key), sources)
        finally:
            with anyio.CancelScope(shield=True), anyio.move_on_after(60):
                await self._delete_quietly(made)

    async def _compose(self, what: str, target: str, sources: list[str]) -> None:
        await self._request(
            what,
            lambda: self._storage().compose(
                self.bucket, target, sources, content_type=OCTET, timeout=REQUEST_TIMEOUT
            ),
        )

    async def _compose_many(self, what: str, jobs: list[tuple[str, list[str]]]) -> None:
        limiter = anyio.CapacityLimiter(self.settings.concurrency)

        async def compose(target: str, sources: list[str]) -> None:
            async with limiter:
                await self._compose(what, target, sources)

        async with anyio.create_task_group() as tg:
            for target, sources in jobs:
                tg.start_soon(compose, target, sources)

    async def _delete_quietly(self, names: list[str]) -> None:
        limiter = anyio.CapacityLimiter(max(self.settings.concurrency, 16))

        async def delete(name: str) -> None:
            async with limiter:
                try:
                    await transfer.with_retries(
                        lambda: self._storage().delete(self.bucket, name), _retryable, attempts=3
                    )
                except Exception:
                    pass  # already gone, or left for the bucket's lifecycle rule

        async with anyio.create_task_group() as tg:
            for name in names:
                tg.start_soon(delete, name)

    # -- reading

    async def _read(self, name: str, start: int, length: int) -> tuple[int, bytes, int | None]:
        """(status, body, object size if the server said) for bytes [start, start+length)."""
        stream = await self._storage().download_stream(
            self.bucket,
            name,
            headers={"Range": f"bytes={start}-{start + length - 1}"},
            timeout=REQUEST_TIMEOUT,
        )
        async with stream as response:
            body = await response.read()
            size: int | None = None
            if response.status == 206:
                total = response.headers.get("Content-Range", "").rpartition("/")[2]
                size = int(total) if total.isdigit() else None
            elif response.status == 200:  # the range was ignored: this is the whole object
                size = len(body)
            return response.status, body, size

    async def _read_into(self, name: str, start: int, view: memoryview) -> None:
        stream = await self._storage().download_stream(
            self.bucket,
            name,
            headers={"Range": f"bytes={start}-{start + len(view) - 1}"},
            timeout=REQUEST_TIMEOUT,
        )
        async with stream as response:
            if response.status != 206:
                raise DataStoreError(f"GCS ignored a Range header for {name} ({response.status})")
            got = 0
            async for chunk in response.content.iter_chunked(1 << 20):
                if got + len(chunk) > len(view):
                    raise aiohttp.ClientPayloadError(f"{name}: more bytes than asked for")
                view[got : got + len(chunk)] = chunk
                got += len(chunk)
            if got != len(view):
                raise aiohttp.ClientPayloadError(f"{name}: {got} of {len(view)} bytes")

    async def get(self, key: str) -> bytearray:
        name, what, missing = self._name(key), f"reading {self._url(key)}", self._not_found(key)
        first_size = self.settings.part_size

        async def first() -> tuple[bytes, int | None]:
            try:
                status, head, size = await self._read(name, 0, first_size)
            except aiohttp.ClientResponseError as e:
                if e.status == 416:  # an empty object has no byte 0
                    return b"", 0
                raise
            if status == 206 and size is not None and len(head) != min(size, first_size):
                raise aiohttp.ClientPayloadError(f"{name}: {len(head)} bytes of the first part")
            return head, size

        head, size = await self._request(what, first, missing)
        if size is None or size <= len(head):  # the whole object in one request
            return bytearray(head)

        async def fetch_into(offset: int, view: memoryview) -> None:
            if offset == 0:
                view[:] = head
                return
            await self._request(what, lambda: self._read_into(name, offset, view), missing)

        try:
            return await transfer.download_ranges(size, self.settings, fetch_into)
        except BaseExceptionGroup as group:
            raise first_error(group) from None

    async def get_range(self, key: str, start: int, length: int) -> bytes:
        name, what = self._name(key), f"reading {self._url(key)}"
        if length <= 0:
            if not await self.exists(key):
                raise NotFound(self._url(key))
            return b""

        async def ranged() -> bytes:
            try:
                status, body, _ = await self._read(name, start, length)
            except aiohttp.ClientResponseError as e:
                if e.status == 416:  # starts past the end: nothing there, like a short pread
                    return b""
                raise
            return body if status == 206 else body[start : start + length]

        return await self._request(what, ranged, self._not_found(key))

    async def exists(self, key: str) -> bool:
        name = self._name(key)
        try:
            await self._request(
                f"looking up {self._url(key)}",
                lambda: self._storage().download_metadata(self.bucket, name, timeout=REQUEST_TIMEOUT),
                self._not_found(key),
            )
        except NotFound:
            return False
        return True

    async def list(self, prefix: str) -> list[str]:
        prefix = prefix.strip("/")
        base = f"{self._name(prefix)}/" if prefix else f"{self.prefix}/" if self.prefix else ""
        what = f"listing {SCHEME}{self.bucket}/{base}"
        params: dict[str, str] = {"delimiter": "/", "fields": "items(name),prefixes,nextPageToken"}
        if base:
            params["prefix"] = base
        names: set[str] = set()
        while True:
            page: dict[str, Any] = await self._request(
                what,
                lambda: self._storage().list_objects(
                    self.bucket, params=dict(params), timeout=REQUEST_TIMEOUT
                ),
            )
            names.update(item["name"][len(base) :] for item in page.get("items", ()))
            names.update(p[len(base) :].rstrip("/") for p in page.get("prefixes", ()))
            token = page.get("nextPageToken")
            if not token:
                break
            params["pageToken"] = token
        names.discard("")
        if not prefix:
            names.discard(UPLOADS)
        return sorted(names)

    # -- the rest of the protocol

    def blocking(self) -> BlockingObjectStore:
        from aflow.stores.portal import PortalBlockingStore

        url = self.url
        return PortalBlockingStore(lambda: GCSStore(url))

    async def check(self) -> None:
        storage = self._storage()
        if not os.environ.get("STORAGE_EMULATOR_HOST"):
            await self._check_credentials(storage)
        base = f"{self.prefix}/" if self.prefix else ""
        params = {"prefix": base, "maxResults": "1", "fields": "nextPageToken"}

        async def probe() -> None:
            with anyio.fail_after(CHECK_TIMEOUT):
                await transfer.with_retries(
                    lambda: storage.list_objects(self.bucket, params=dict(params), timeout=10),
                    _retryable,
                    attempts=3,
                )

        try:
            await probe()
        except (aiohttp.ClientError, OSError, TimeoutError) as e:
            raise self._failure(f"datastore {self.url}", e) from None

    async def _check_credentials(self, storage: Storage) -> None:
        token = storage.token
        if token.token_type == Type.GCE_METADATA:
            # No key file and no gcloud ADC file: only a metadata server (on GCP) can help.
            try:
                async with storage.session.session.get(
                    f"{GCE_METADATA_BASE}/",
                    headers=GCE_METADATA_HEADERS,
                    timeout=aiohttp.ClientTimeout(total=3),
                ) as response:
                    reachable = response.status < 500
            except (aiohttp.ClientError, OSError, TimeoutError):
                reachable = False
            if not reachable:
                raise DataStoreError(
                    f"datastore {self.url}: no Google Cloud credentials found: {CREDENTIALS_FIX}"
                )
        try:
            with anyio.fail_after(CHECK_TIMEOUT):
                await token.get()
        except Exception as e:
            raise DataStoreError(
                f"datastore {self.url}: could not get a Google Cloud access token ({e!r}): "
                f"{CREDENTIALS_FIX}"
            ) from None

    async def aclose(self) -> None:
        if os.getpid() != self._pid:
            return
        storage = self._clients.pop(asyncio.get_running_loop(), None)
        if storage is not None:
            await storage.close()
