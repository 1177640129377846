"""The S3 datastore on aioboto3 (the 'aws' extra): `--datastore s3 --datastore-root
s3://bucket/prefix`, or AFLOW_DATASTORE_SYSROOT_S3.

Credentials and region come the usual AWS way (AWS_* variables, profiles, instance roles);
AFLOW_S3_ENDPOINT_URL points at an S3-compatible server. One client per event loop, shared by every
call. Objects over the transfer threshold go up as a multipart upload (parts cut from the object's own
memory; each copied, CRC32-checked and SHA-256-hashed for its signature in a worker thread, then sent
from that copy a slice at a time; a bounded number in flight; any failure or cancellation aborts
the upload, so nothing half-written is ever visible; a bucket lifecycle rule
"AbortIncompleteMultipartUpload" covers a process killed outright) and come down as concurrent
ranged GETs into one buffer (see transfer.py; a large read is not pinned to one version, which is
safe because blobs are content-addressed and never rewritten). Throttling (503 SlowDown, 429) and
transient network errors are retried by botocore's standard retry mode, which backs off
exponentially with jitter.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import hashlib
import os
import zlib
from collections.abc import AsyncIterator, Callable, Sequence
from typing import Any

# aioboto3 and botocore ship no type information (their generated stubs are not a dependency):
# what they give is Any, and this module's own signatures say what it takes and returns.
import aioboto3  # type: ignore[import-untyped]
import aiohttp.payload
import anyio
from aiohttp.abc import AbstractStreamWriter
from botocore.auth import S3SigV4Auth  # type: ignore[import-untyped]
from botocore.awsrequest import AWSRequest  # type: ignore[import-untyped]
from botocore.config import Config  # type: ignore[import-untyped]
from botocore.exceptions import (  # type: ignore[import-untyped]
    BotoCoreError,
    ClientError,
    NoCredentialsError,
)
from botocore.handlers import convert_body_to_file_like_object  # type: ignore[import-untyped]

from aflow.exception import DataStoreError
from aflow.stores.base import BlockingObjectStore, Buffer, NotFound, StoreBase
from aflow.stores.portal import PortalBlockingStore
from aflow.stores.transfer import (
    TransferSettings,
    download_ranges,
    join,
    total_size,
    upload_parts,
)

_MISSING = {"NoSuchKey", "404", "NotFound"}
_session: aioboto3.Session | None = None


def _shared_session() -> aioboto3.Session:
    """One session per process: the first client it makes loads botocore's models (about 0.1 s);
    later ones reuse them (a few ms). A warm parent makes that first client before it forks."""
    global _session
    if _session is None:
        _session = aioboto3.Session()
    return _session


class S3Store(StoreBase):
    """The ObjectStore on an S3 bucket and prefix (`s3://bucket/prefix`): one client per event
    loop, multipart uploads and ranged reads past the transfer threshold, errors named by URL."""

    def __init__(self, url: str) -> None:
        bucket, _, prefix = url.removeprefix("s3://").partition("/")
        if not bucket:
            raise DataStoreError(f"{url!r} names no bucket: write s3://BUCKET/PREFIX")
        self.bucket = bucket
        self.prefix = prefix.strip("/")
        self.url = f"s3://{bucket}/{self.prefix}" if self.prefix else f"s3://{bucket}"
        self.settings = TransferSettings.from_env()
        self._clients: dict[int, tuple[Any, contextlib.AsyncExitStack]] = {}

    # -- plumbing ------------------------------------------------------------------------------

    def _new_client(self) -> Any:
        config = Config(
            retries={"mode": "standard", "max_attempts": 10},
            max_pool_connections=max(10, 2 * self.settings.concurrency),
            # Not botocore's own checksums, computed on the event loop: multipart parts carry a
            # CRC32 computed in a worker thread (see put), and small objects are checked by key.
            request_checksum_calculation="when_required",
            # Presigned URLs too: buckets made since mid-2020 refuse SigV2, botocore's default
            # for presigning in some regions.
            signature_version="s3v4",
        )
        endpoint = os.environ.get("AFLOW_S3_ENDPOINT_URL") or None
        return _shared_session().client("s3", endpoint_url=endpoint, config=config)

    async def _client(self) -> Any:
        loop = id(asyncio.get_running_loop())
        if loop not in self._clients:
            stack = contextlib.AsyncExitStack()
            client = await stack.enter_async_context(self._new_client())
            _send_parts_as_made(client)
            self._clients[loop] = (client, stack)
        return self._clients[loop][0]

    def prewarm(self) -> None:
        """In the warm parent, before it forks: make (and close) one client, so botocore's models
        are loaded once for every task. No request is sent, and no thread or loop is left."""

        import anyio._backends._asyncio  # noqa: F401 - the tasks' store loop runs on it

        async def once() -> None:
            async with self._new_client():
                pass

        asyncio.run(once())

    def _key(self, key: str) -> str:
        return f"{self.prefix}/{key}" if self.prefix else key

    def _url(self, key: str) -> str:
        return f"{self.url}/{key}"

    @staticmethod
    def _code(e: ClientError) -> str:
        return str(e.response.get("Error", {}).get("Code", ""))

    @contextlib.asynccontextmanager
    async def _errors(self, key: str | None = None) -> AsyncIterator[None]:
        """SDK errors as the store's: NotFound for a missing object, else what to fix."""
        where = self._url(key) if key is not None else self.url
        try:
            yield
        except ClientError as e:
            code = self._code(e)
            if code in _MISSING and key is not None:
                raise NotFound(where) from None
            if code in ("404", "NoSuchBucket"):
                raise DataStoreError(f"bucket '{self.bucket}' does not exist ({where})") from None
            if code in ("403", "AccessDenied", "InvalidAccessKeyId", "SignatureDoesNotMatch"):
                raise DataStoreError(
                    f"no access to {where} with these AWS credentials ({code})"
                ) from None
            raise DataStoreError(f"S3 refused {where}: {e}") from None
        except NoCredentialsError:
            raise DataStoreError(
                "no AWS credentials found: set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, "
                "AWS_PROFILE, or run where an instance role applies"
            ) from None
        except BotoCoreError as e:
            raise DataStoreError(f"cannot reach S3 for {where}: {e}") from None

    # -- the ObjectStore protocol ----------------------------------------------------------------

    async def put(
        self, key: str, parts: Sequence[Buffer], extra: dict[str, Any] | None = None
    ) -> None:
        """`extra`: more of PutObject's arguments (ContentType, Metadata, ServerSideEncryption),
        for the user-facing S3 client (aflow.s3); the datastore itself passes none."""
        extra = extra or {}
        async with self._errors(key):
            client = await self._client()
            name = self._key(key)
            if total_size(parts) <= self.settings.threshold:
                await client.put_object(Bucket=self.bucket, Key=name, Body=join(parts), **extra)
                return
            # Parts carry a CRC32 (computed in a worker thread): S3 checks each part on arrival,
            # and completing the upload is then far cheaper than without part checksums.
            upload = await client.create_multipart_upload(
                Bucket=self.bucket, Key=name, ChecksumAlgorithm="CRC32", **extra
            )
            upload_id = upload["UploadId"]
            # Preparing a part is CPU work that releases the GIL: more threads than cores gain
            # nothing, and each extra thread's malloc arena keeps freed parts' memory afterwards.
            cores = anyio.CapacityLimiter(min(self.settings.concurrency, os.cpu_count() or 1))

            async def send(number: int, piece: Buffer) -> dict[str, Any]:
                # One part's copy (botocore takes bytes, not views; at most `concurrency` parts
                # exist at once), its checksum and its signature's hash, made in a worker thread.
                part = await anyio.to_thread.run_sync(_PartBody.of, piece, limiter=cores)
                sent = await client.upload_part(
                    Bucket=self.bucket,
                    Key=name,
                    UploadId=upload_id,
                    PartNumber=number,
                    Body=part,
                    ChecksumCRC32=part.crc32,
                )
                return {"PartNumber": number, "ETag": sent["ETag"], "ChecksumCRC32": part.crc32}

            try:
                done = await upload_parts(parts, self.settings, send)
                await client.complete_multipart_upload(
                    Bucket=self.bucket, Key=name, UploadId=upload_id, MultipartUpload={"Parts": done}
                )
            except BaseException:
                with anyio.CancelScope(shield=True):
                    await self._abort(client, name, upload_id)
                raise

    async def _abort(self, client: Any, name: str, upload_id: str) -> None:
        """Abort a multipart upload until it is gone. A part still arriving can outlive one abort
        (S3 says to abort again until ListParts finds no upload), and an abort racing a part can
        fail (moto answers 500): a few tries over a few seconds, within a stopped task's grace."""
        for attempt in range(6):
            try:
                await client.abort_multipart_upload(Bucket=self.bucket, Key=name, UploadId=upload_id)
                await client.list_parts(Bucket=self.bucket, Key=name, UploadId=upload_id)
            except ClientError as e:
                if self._code(e) in ("NoSuchUpload", "404"):
                    return  # gone
            except (BotoCoreError, OSError):
                pass
            await anyio.sleep(0.1 * 2**attempt)

    async def get(self, key: str) -> bytearray:
        return (await self.get_with_info(key))[0]

    async def get_with_info(self, key: str) -> tuple[bytearray, dict[str, Any]]:
        """The object and what its first GET said of it (ContentType, Metadata, LastModified,
        ServerSideEncryption; none of them for an empty object), for the S3 client (aflow.s3)."""
        async with self._errors(key):
            client = await self._client()
            first = self.settings.threshold
            head = await self._get_object(client, key, 0, first - 1)  # a missing key: NoSuchKey
            if head is None:  # an empty object: no range of it exists
                return bytearray(), {}
            body = head["Body"]
            async with body:
                start = await body.read()
            info = {k: v for k, v in head.items() if k != "Body"}
            size = _total(head, len(start))
            if size <= len(start):
                return bytearray(start), info

            async def fetch_into(offset: int, view: memoryview) -> None:
                if offset < len(start):  # the first piece is already here
                    view[: len(start) - offset] = start[offset : offset + view.nbytes]
                    offset, view = len(start), view[len(start) - offset :]
                    if not view.nbytes:
                        return
                await self._read_range_into(client, key, offset, view)

            return await download_ranges(size, self.settings, fetch_into), info

    async def _get_object(self, client: Any, key: str, first: int, last: int) -> Any:
        """A ranged GET; None when the range starts past the end (S3 answers 416)."""
        name = self._key(key)
        try:
            return await client.get_object(Bucket=self.bucket, Key=name, Range=f"bytes={first}-{last}")
        except ClientError as e:
            if self._code(e) == "InvalidRange":
                return None
            raise

    async def _read_range_into(self, client: Any, key: str, offset: int, view: memoryview) -> None:
        got = await self._get_object(client, key, offset, offset + view.nbytes - 1)
        if got is None:
            raise DataStoreError(f"{self._url(key)} changed while it was being read")
        pos = 0
        body = got["Body"]
        async with body:
            while pos < view.nbytes:  # straight into its place in the buffer
                n = await body.readinto(view[pos:])
                if not n:
                    raise DataStoreError(f"{self._url(key)}: the download ended early")
                pos += n

    async def get_range(self, key: str, start: int, length: int) -> bytes:
        async with self._errors(key):
            client = await self._client()
            if length <= 0:  # S3 would ignore an empty range and send the whole object
                if not await self._exists(client, key):
                    raise NotFound(self._url(key))
                return b""
            got = await self._get_object(client, key, start, start + length - 1)
            if got is None:
                if not await self._exists(client, key):
                    raise NotFound(self._url(key))
                return b""
            body = got["Body"]
            async with body:
                data: bytes = await body.read()
                return data

    async def _exists(self, client: Any, key: str) -> bool:
        try:
            await client.head_object(Bucket=self.bucket, Key=self._key(key))
            return True
        except ClientError as e:
            if self._code(e) in _MISSING:
                return False
            raise

    async def exists(self, key: str) -> bool:
        async with self._errors(key):
            return await self._exists(await self._client(), key)

    async def list(self, prefix: str) -> list[str]:
        async with self._errors():
            client = await self._client()
            base = self._key(prefix).strip("/")
            base = f"{base}/" if base else ""
            names: set[str] = set()
            paginator = client.get_paginator("list_objects_v2")
            async for page in paginator.paginate(Bucket=self.bucket, Prefix=base, Delimiter="/"):
                for common in page.get("CommonPrefixes", []):
                    names.add(common["Prefix"][len(base) :].rstrip("/"))
                for item in page.get("Contents", []):
                    names.add(item["Key"][len(base) :])
            return sorted(n for n in names if n)

    def blocking(self) -> BlockingObjectStore:
        url = self.url
        return PortalBlockingStore(lambda: S3Store(url))

    async def check(self) -> None:
        """A quick look at the bucket: two attempts, short timeouts, so a wrong endpoint is
        reported in seconds rather than after a full retry schedule."""
        config = Config(
            retries={"mode": "standard", "max_attempts": 2}, connect_timeout=5, read_timeout=10
        )
        endpoint = os.environ.get("AFLOW_S3_ENDPOINT_URL") or None
        async with (
            self._errors(),
            _shared_session().client("s3", endpoint_url=endpoint, config=config) as c,
        ):
            await c.head_bucket(Bucket=self.bucket)

    async def presigned_url(self, key: str, seconds: int) -> str:
        """A URL that reads `key` without credentials for `seconds`: how a container with nothing
        but Python's standard library fetches the code package (see engine/bootstrap.py)."""
        client = await self._client()
        return str(
            await client.generate_presigned_url(
                "get_object", Params={"Bucket": self.bucket, "Key": self._key(key)}, ExpiresIn=seconds
            )
        )

    async def aclose(self) -> None:
        entry = self._clients.pop(id(asyncio.get_running_loop()), None)
        if entry is not None:
            await entry[1].aclose()


class _PartBody(bytes):
    """A part's bytes, with their CRC32 (base64) and SHA-256 (hex) made in the same worker-thread
    hop as the copy. Being bytes, it is what botocore validates, signs and hands to aiohttp."""

    crc32: str
    sha256: str

    @classmethod
    def of(cls, piece: Buffer) -> _PartBody:
        body = cls(piece)
        body.crc32 = base64.b64encode(zlib.crc32(body).to_bytes(4, "big")).decode()
        body.sha256 = hashlib.sha256(body).hexdigest()
        return body


class _PartPayload(aiohttp.payload.Payload):
    """aiohttp sends a part as slices of its memory. One write of a 16 MiB bytes costs three
    copies of it on the event loop before Python 3.12 (aiohttp joins it to the headers; asyncio
    slices off what the socket took and copies the rest into its buffer), each in fresh memory;
    a slice at a time, with the writer's drain between, what the socket doesn't take at once is
    the only copy."""

    _autoclose = True  # nothing to close: bytes in memory, which may be sent again on a retry
    SLICE = 1 << 20

    def __init__(self, value: _PartBody, *args: Any, **kwargs: Any) -> None:
        kwargs.setdefault("content_type", "application/octet-stream")
        super().__init__(value, *args, **kwargs)
        self._body = value  # what aiohttp keeps untyped as _value
        self._size = len(value)

    def decode(self, encoding: str = "utf-8", errors: str = "strict") -> str:
        return self._body.decode(encoding, errors)

    async def as_bytes(self, encoding: str = "utf-8", errors: str = "strict") -> bytes:
        return self._body

    async def write(self, writer: AbstractStreamWriter) -> None:
        await self.write_with_length(writer, None)

    async def write_with_length(self, writer: AbstractStreamWriter, content_length: int | None) -> None:
        view = memoryview(self._body)[:content_length]
        for start in range(0, view.nbytes, self.SLICE):
            await writer.write(view[start : start + self.SLICE])


# Ahead of aiohttp's own bytes payload, which would otherwise match this bytes subclass first.
aiohttp.payload.register_payload(_PartPayload, _PartBody, order=aiohttp.payload.Order.try_first)


def _send_parts_as_made(client: Any) -> None:
    """Make this client send a part's bytes as they are, signed with the hash made for them.

    Left to itself, botocore wraps a bytes Body in a BytesIO, which aiohttp then streams 256 KiB
    at a time, each piece read in the default executor, behind an "Expect: 100-continue" round
    trip; and the signer SHA-256-hashes the body (always over http, and over https too when the
    checksum is ours rather than botocore's) on the event loop, serialising every part behind it:
    about a second per GiB on this machine. Unwrapped, a part goes out as _PartPayload slices;
    its hash stands in only where the signer would hash that very body, so the bytes sent and the
    signature are unchanged. Without the 100-continue (botocore asks for it for file-like bodies
    only) a part S3 refuses is refused after its body rather than before: errors are rare, and
    the upload is then aborted all the same. Both apply to this client only (botocore copies its
    event handlers per client); where botocore differs, parts are sent and signed as before.
    """
    client.meta.events.unregister(
        "before-parameter-build.s3.UploadPart", convert_body_to_file_like_object
    )
    signer = getattr(client, "_request_signer", None)
    make_auth = getattr(signer, "get_auth_instance", None)
    if signer is None or make_auth is None:
        return
    if not all(hasattr(S3SigV4Auth, m) for m in _SIGNER_DECISIONS):
        return

    async def get_auth_instance(*args: Any, **kwargs: Any) -> Any:
        auth = await make_auth(*args, **kwargs)
        if isinstance(auth, S3SigV4Auth):
            auth.payload = _known_payload(auth, auth.payload)
        return auth

    signer.get_auth_instance = get_auth_instance


# What S3SigV4Auth.payload asks before it hashes a body; a part's own hash stands in only then.
_SIGNER_DECISIONS = ("_is_streaming_checksum_payload", "_should_sha256_sign_payload")


def _known_payload(
    auth: S3SigV4Auth, payload: Callable[[AWSRequest], str]
) -> Callable[[AWSRequest], str]:
    def known(request: AWSRequest) -> str:
        body = request.body
        if (
            isinstance(body, _PartBody)
            and not auth._is_streaming_checksum_payload(request)
            and auth._should_sha256_sign_payload(request)
        ):
            return body.sha256
        return payload(request)  # anything else: botocore's own answer

    return known


def _total(response: dict[str, Any], got: int) -> int:
    """The object's whole size, from the Content-Range of a ranged GET."""
    content_range = response.get("ContentRange") or ""
    if "/" in content_range:
        total = content_range.rsplit("/", 1)[1]
        if total.isdigit():
            return int(total)
    return got
