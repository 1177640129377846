"""The Azure Blob datastore (`az://CONTAINER/PREFIX`) on azure-storage-blob's asyncio client.

A key `Flow/run/step/...` lives in blob `PREFIX/Flow/run/step/...` of CONTAINER. Small objects go up
in one Put Blob and come down in one ranged Get Blob; an object over the transfer threshold is staged
as blocks (ids unique to the upload, at most `concurrency` in flight) and appears only when its block
list is committed, so a failed or cancelled upload leaves no blob (its uncommitted blocks are invisible
and Azure drops them after a week); a large download is ranged reads into one preallocated buffer,
pinned to the first read's ETag so an overwrite midway cannot mix two versions.
Credentials: AZURE_STORAGE_CONNECTION_STRING, else AFLOW_AZURE_ACCOUNT_URL with azure-identity's
DefaultAzureCredential; AFLOW_AZURE_API_VERSION pins the service API version (for an emulator that
lags the SDK). Retries: 5xx (503 ServerBusy is how Azure throttles), 408 and connection errors are
retried by the SDK's own retry policy (5 retries, jittered, after 1 s then 1 + 2^n s); 429, which that
policy does not retry, is retried per request with `transfer.with_retries`, so no request is retried by
both. The constructor touches no network and starts nothing: clients are made on first use, one per
event loop (a store may be built in a warm parent before it forks, or used from a portal's loop).
This module knows bytes and keys only: no artifacts, records or runs.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
import uuid
import weakref
from collections.abc import Awaitable, Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import IO, Any, TypeVar, cast

from azure.core import MatchConditions
from azure.core.exceptions import (
    ClientAuthenticationError,
    HttpResponseError,
    ResourceModifiedError,
    ResourceNotFoundError,
    ServiceRequestError,
    ServiceResponseError,
)
from azure.storage.blob import BlobBlock
from azure.storage.blob.aio import BlobClient, BlobServiceClient, ExponentialRetry

from aflow.exception import DataStoreError, first_error
from aflow.stores.base import BlockingObjectStore, Buffer, NotFound, StoreBase
from aflow.stores.transfer import (
    TransferSettings,
    download_ranges,
    join,
    total_size,
    upload_parts,
    with_retries,
)

T = TypeVar("T")

SCHEME = "az://"
MAX_BLOCKS = 50_000  # Azure's limit of committed blocks per blob
_CONTAINER_NAME = re.compile(r"^(?=.{3,63}$)[a-z0-9]+(-[a-z0-9]+)*$")
_CONTENT_RANGE_TOTAL = re.compile(r"/(\d+)\s*$")


def parse_url(url: str) -> tuple[str, str]:
    """(container, prefix) of `az://CONTAINER/PREFIX`; the prefix may be empty."""
    if not url.startswith(SCHEME):
        raise DataStoreError(f"an Azure datastore root looks like az://CONTAINER/PREFIX, not {url!r}")
    container, _, prefix = url[len(SCHEME) :].partition("/")
    if not _CONTAINER_NAME.match(container):
        raise DataStoreError(
            f"{url}: {container!r} is not a valid Azure container name (3-63 lowercase letters, "
            "digits and single hyphens, starting and ending with a letter or digit)"
        )
    return container, prefix.strip("/")


@dataclass
class _Connection:
    service: BlobServiceClient
    credential: Any  # an async azure-identity credential to close, or None
    endpoint: str


class _Into:
    """A write-only stream over a memoryview: where the SDK's downloader copies a range."""

    def __init__(self, view: memoryview) -> None:
        self.view = view
        self.written = 0

    def write(self, data: bytes) -> int:
        n = len(data)
        if self.written + n > len(self.view):
            raise DataStoreError("the blob grew while it was being read")
        self.view[self.written : self.written + n] = data
        self.written += n
        return n

    def stream(self) -> IO[bytes]:
        # The downloader asks for IO[bytes] but, reading over one connection (the default
        # max_concurrency), only calls write(): that is all of a stream this needs to be.
        return cast(IO[bytes], self)


def _error_code(e: HttpResponseError) -> str | None:
    """Azure Storage's error code (e.g. ContainerNotFound). The storage SDK sets `error_code` on the
    errors it makes of a response; one raised before any response (azure-identity's, when it gets
    no token) has none."""
    code = getattr(e, "error_code", None)
    return code if isinstance(code, str) else None


def _throttled(e: BaseException) -> bool:
    return isinstance(e, HttpResponseError) and e.status_code == 429


def _connect() -> _Connection:
    options: dict[str, Any] = {
        "retry_policy": ExponentialRetry(
            initial_backoff=1, increment_base=2, retry_total=5, random_jitter_range=1
        )
    }
    if api_version := os.environ.get("AFLOW_AZURE_API_VERSION"):
        options["api_version"] = api_version
    connection_string = os.environ.get("AZURE_STORAGE_CONNECTION_STRING")
    if connection_string:
        try:
            service = BlobServiceClient.from_connection_string(connection_string, **options)
        except ValueError as e:
            raise DataStoreError(f"AZURE_STORAGE_CONNECTION_STRING is not usable: {e}") from None
        return _Connection(service, None, service.url)
    account_url = os.environ.get("AFLOW_AZURE_ACCOUNT_URL")
    if not account_url:
        raise DataStoreError(
            "the Azure datastore needs credentials: set AZURE_STORAGE_CONNECTION_STRING, or set "
            "AFLOW_AZURE_ACCOUNT_URL=https://ACCOUNT.blob.core.windows.net and install azure-identity "
            "(pip install azure-identity) to sign in with DefaultAzureCredential"
        )
    try:
        from azure.identity.aio import DefaultAzureCredential
    except ImportError:
        raise DataStoreError(
            f"AFLOW_AZURE_ACCOUNT_URL={account_url} needs azure-identity to sign in: "
            "pip install azure-identity, or set AZURE_STORAGE_CONNECTION_STRING instead"
        ) from None
    credential = DefaultAzureCredential()
    try:
        service = BlobServiceClient(account_url, credential=credential, **options)
    except ValueError as e:
        raise DataStoreError(f"AFLOW_AZURE_ACCOUNT_URL={account_url} is not usable: {e}") from None
    return _Connection(service, credential, account_url)


class AzureStore(StoreBase):
    """Async access to one `az://CONTAINER/PREFIX` root."""

    def __init__(self, url: str) -> None:
        self.container, self.prefix = parse_url(url)
        self.url = f"{SCHEME}{self.container}/{self.prefix}".rstrip("/")
        self._connections: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, _Connection] = (
            weakref.WeakKeyDictionary()
        )
        self._pid = os.getpid()
        self._endpoint = ""

    # --- clients, names, errors -------------------------------------------------------------

    def _connection(self) -> _Connection:
        if self._pid != os.getpid():  # a forked child: the parent's clients are not ours to use
            self._connections = weakref.WeakKeyDictionary()
            self._pid = os.getpid()
        loop = asyncio.get_running_loop()
        conn = self._connections.get(loop)
        if conn is None:
            conn = self._connections[loop] = _connect()
            self._endpoint = conn.endpoint
        return conn

    def _name(self, key: str) -> str:
        return "/".join(p for p in (self.prefix, key.strip("/")) if p)

    def _url_of(self, key: str) -> str:
        return f"{SCHEME}{self.container}/{self._name(key)}"

    def _blob(self, key: str) -> BlobClient:
        return self._connection().service.get_blob_client(self.container, self._name(key))

    @contextlib.contextmanager
    def _errors(self, key: str | None) -> Iterator[None]:
        """Azure's errors as ours: a missing blob is NotFound; what the user must fix (container,
        credentials, endpoint) is a DataStoreError saying so."""
        try:
            yield
        except BaseException as raised:
            e = first_error(raised)
            where = self._endpoint or "the account"
            if isinstance(e, ResourceNotFoundError):
                if _error_code(e) == "ContainerNotFound" or key is None:
                    raise DataStoreError(
                        f"{self.url}: container '{self.container}' does not exist in {where}: create "
                        f"it (az storage container create --name {self.container}) or fix the "
                        "datastore root"
                    ) from None
                raise NotFound(self._url_of(key)) from None
            if isinstance(e, ClientAuthenticationError) or (
                isinstance(e, HttpResponseError) and e.status_code == 403
            ):
                raise DataStoreError(
                    f"{self.url}: {where} refused the credentials "
                    f"({_error_code(e) or e.status_code or e.message}): "
                    "check the AccountKey or SAS in AZURE_STORAGE_CONNECTION_STRING, or the identity "
                    "DefaultAzureCredential signs in with and its role on the container"
                ) from None
            if isinstance(e, ServiceRequestError | ServiceResponseError):
                raise DataStoreError(
                    f"{self.url}: cannot reach {where} ({e.message}): check the BlobEndpoint in "
                    "AZURE_STORAGE_CONNECTION_STRING or AFLOW_AZURE_ACCOUNT_URL, and the network"
                ) from None
            if e is not raised:
                raise e from raised
            raise

    async def _call(self, action: Callable[[], Awaitable[T]]) -> T:
        return await with_retries(action, _throttled)

    # --- the ObjectStore protocol -------------------------------------------------------------

    async def put(self, key: str, parts: Sequence[Buffer]) -> None:
        settings = TransferSettings.from_env()
        size = total_size(parts)
        with self._errors(key):
            blob = self._blob(key)
            if size <= settings.threshold:
                data = join(parts)
                await self._call(lambda: blob.upload_blob(data, length=size, overwrite=True))
                return
            blocks = -(-size // settings.part_size)
            if blocks > MAX_BLOCKS:
                raise DataStoreError(
                    f"{self._url_of(key)}: {size} bytes would take {blocks} blocks, over Azure's "
                    f"{MAX_BLOCKS}: raise AFLOW_TRANSFER_PART_SIZE to at least "
                    f"{-(-size // MAX_BLOCKS)} bytes"
                )
            upload = uuid.uuid4().hex  # unique per upload: two writers never mix their blocks

            async def stage(number: int, piece: Buffer) -> str:
                block_id = f"{upload}-{number:06d}"  # every id of a blob must have the same length
                length = memoryview(piece).nbytes
                # The SDK's annotation says bytes, but it sends any bytes-like body as it is; a
                # bytes copy of each part would cost its size again, on the event loop.
                await self._call(
                    lambda: blob.stage_block(block_id, piece, length=length)  # type: ignore[arg-type]
                )
                return block_id

            block_ids = await upload_parts(parts, settings, stage)
            await self._call(lambda: blob.commit_block_list([BlobBlock(b) for b in block_ids]))

    async def get(self, key: str) -> bytearray:
        settings = TransferSettings.from_env()
        with self._errors(key):
            blob = self._blob(key)
            for attempt in range(3):
                try:
                    return await self._get(blob, settings)
                except BaseException as e:
                    if not isinstance(first_error(e), ResourceModifiedError) or attempt == 2:
                        raise
            raise AssertionError("unreachable")

    async def _get(self, blob: BlobClient, settings: TransferSettings) -> bytearray:
        """One ranged read of up to `threshold` bytes; what is left, in concurrent parts."""
        try:
            first = await self._call(lambda: blob.download_blob(offset=0, length=settings.threshold))
        except HttpResponseError as e:
            if e.status_code == 416:  # a range starting at 0 is unsatisfiable only for an empty blob
                return bytearray()
            raise
        match = _CONTENT_RANGE_TOTAL.search(first.properties.content_range or "")
        size = int(match.group(1)) if match else first.size
        if size <= settings.threshold:
            buffer = bytearray(size)
            await first.readinto(_Into(memoryview(buffer)).stream())
            return buffer
        head = memoryview(await first.readall())
        etag = first.properties.etag

        async def fetch_into(offset: int, view: memoryview) -> None:
            have = max(0, min(len(head) - offset, len(view)))
            if have:
                view[:have] = head[offset : offset + have]
            if have < len(view):
                await self._read_into(blob, offset + have, view[have:], etag)

        return await download_ranges(size, settings, fetch_into)

    async def _read_into(self, blob: BlobClient, offset: int, view: memoryview, etag: str) -> None:
        downloader = await self._call(
            lambda: blob.download_blob(
                offset=offset,
                length=len(view),
                etag=etag,
                match_condition=MatchConditions.IfNotModified,
            )
        )
        into = _Into(view)
        await downloader.readinto(into.stream())
        if into.written != len(view):
            raise DataStoreError(f"{blob.url}: got {into.written} of {len(view)} bytes at {offset}")

    async def get_range(self, key: str, start: int, length: int) -> bytes:
        with self._errors(key):
            blob = self._blob(key)
            if length <= 0:
                await self._call(blob.get_blob_properties)  # NotFound if missing
                return b""
            try:
                downloader = await self._call(lambda: blob.download_blob(offset=start, length=length))
            except HttpResponseError as e:
                if e.status_code == 416:  # starts at or past the end: nothing there, like pread
                    return b""
                raise
            return await downloader.readall()

    async def exists(self, key: str) -> bool:
        with self._errors(key):
            blob = self._blob(key)
            try:
                await self._call(blob.get_blob_properties)
            except ResourceNotFoundError as e:
                if _error_code(e) == "ContainerNotFound":
                    raise
                return False
            return True

    async def list(self, prefix: str) -> list[str]:
        with self._errors(None):
            below = self._name(prefix)
            below = f"{below}/" if below else ""
            container = self._connection().service.get_container_client(self.container)
            names: set[str] = set()

            async def walk() -> None:
                names.clear()
                async for item in container.walk_blobs(name_starts_with=below, delimiter="/"):
                    name = item.name[len(below) :].rstrip("/")
                    if name:
                        names.add(name)

            await self._call(walk)
            return sorted(names)

    def blocking(self) -> BlockingObjectStore:
        from aflow.stores.portal import PortalBlockingStore

        url = self.url
        return PortalBlockingStore(lambda: AzureStore(url))

    async def check(self) -> None:
        with self._errors(None):
            container = self._connection().service.get_container_client(self.container)
            try:
                # One retry only: an unreachable endpoint should be reported now, not in a minute.
                await self._call(lambda: container.get_container_properties(retry_total=1))
            except HttpResponseError as e:
                if (
                    isinstance(e, ResourceNotFoundError | ClientAuthenticationError)
                    or e.status_code == 403
                ):
                    raise
                raise DataStoreError(
                    f"{self.url}: {self._endpoint} answered {e.status_code} {_error_code(e) or ''} "
                    f"when asked about container '{self.container}': {e.reason}"
                ) from None

    async def aclose(self) -> None:
        """Close this event loop's client (an aiohttp session can be closed only on its own loop:
        a store used from several loops is closed from each)."""
        conn = self._connections.pop(asyncio.get_running_loop(), None)
        if conn is not None:
            await conn.service.close()
            if conn.credential is not None:
                await conn.credential.close()
