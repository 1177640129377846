"""What the S3 client hands back and takes: `S3Object`, `S3GetObject`, `S3PutObject`, `RangeInfo`,
and its errors, under the names Metaflow users import.

Plain values only: nothing here talks to S3.
"""

from __future__ import annotations

import json
import os
from typing import IO, Any, NamedTuple

from aflow.exception import AflowException, AflowNotFound

# User metadata travels JSON-encoded under one S3 metadata key, the one Metaflow uses, so objects
# written by either read back with their metadata through the other.
USER_METADATA_KEY = "metaflow-user-attributes"


class MetaflowS3Exception(AflowException):
    headline = "S3 error"


class MetaflowS3NotFound(MetaflowS3Exception, AflowNotFound):
    headline = "not in S3"


class MetaflowS3URLException(MetaflowS3Exception):
    headline = "S3 URL error"


class MetaflowS3AccessDenied(MetaflowS3Exception):
    headline = "S3 access denied"


class MetaflowS3InvalidObject(MetaflowS3Exception):
    headline = "S3 invalid object"


class MetaflowS3InvalidRange(MetaflowS3Exception):
    headline = "S3 invalid range"


class S3GetObject(NamedTuple):
    """A key to get, optionally only `length` bytes from `offset` (a negative length: the last
    -length bytes)."""

    key: str
    offset: int | None = None
    length: int | None = None


# What put takes as an object's value: text (stored as UTF-8), bytes, or a readable file.
PutValue = str | bytes | bytearray | memoryview | IO[bytes] | IO[str]


class S3PutObject(NamedTuple):
    """A key to put, with its value (str, bytes or a readable file) or a local `path`."""

    key: str
    value: PutValue | None = None
    path: str | None = None
    content_type: str | None = None
    encryption: str | None = None
    metadata: dict[str, Any] | None = None


# What names an object to read: a key (relative to the client's root, or a full s3:// URL without
# one), an S3GetObject (a key and a range), or None for the root itself.
GetKey = str | S3GetObject | None


class RangeInfo(NamedTuple):
    total_size: int
    request_offset: int = 0
    request_length: int = -1


class S3Object:
    """An object (or a prefix) in S3, with its local copy once downloaded (`path`, `blob`,
    `text`); the copy is deleted when the S3 client that made it closes."""

    def __init__(
        self,
        prefix: str | None,
        url: str,
        path: str | None,
        size: int | None = None,
        content_type: str | None = None,
        metadata: dict[str, str] | None = None,
        range_info: RangeInfo | None = None,
        last_modified: int | None = None,
        encryption: str | None = None,
    ) -> None:
        self._url = url
        self._path = path
        self._size = os.stat(path).st_size if path else size
        self._content_type = content_type
        self._metadata = None
        if metadata and USER_METADATA_KEY in metadata:
            self._metadata = json.loads(metadata[USER_METADATA_KEY])
        self._range_info = range_info
        self._last_modified = last_modified
        self._encryption = encryption
        if prefix is None or prefix == url:
            self._prefix, self._key = None, url
        else:
            # The key is what the caller asked by: the URL below the client's (or listing's) prefix.
            self._prefix = prefix
            self._key = url[len(prefix.rstrip("/")) + 1 :].rstrip("/")

    @property
    def exists(self) -> bool:
        return self._size is not None

    @property
    def downloaded(self) -> bool:
        return bool(self._path)

    @property
    def url(self) -> str:
        return self._url

    @property
    def prefix(self) -> str | None:
        return self._prefix

    @property
    def key(self) -> str:
        return self._key

    @property
    def path(self) -> str | None:
        return self._path

    @property
    def blob(self) -> bytes | None:
        if not self._path:
            return None
        with open(self._path, "rb") as f:
            return f.read()

    @property
    def text(self) -> str | None:
        blob = self.blob
        return None if blob is None else blob.decode("utf-8", errors="replace")

    @property
    def size(self) -> int | None:
        return self._size

    @property
    def has_info(self) -> bool:
        return any(
            v is not None
            for v in (self._content_type, self._metadata, self._range_info, self._encryption)
        )

    @property
    def metadata(self) -> dict[str, Any] | None:
        return self._metadata

    @property
    def content_type(self) -> str | None:
        return self._content_type

    @property
    def encryption(self) -> str | None:
        return self._encryption

    @property
    def range_info(self) -> RangeInfo | None:
        return self._range_info

    @property
    def last_modified(self) -> int | None:
        return self._last_modified

    def __str__(self) -> str:
        if self._path:
            return f"<S3Object {self._url} ({self._size} bytes, local)>"
        if self._size is not None:
            return f"<S3Object {self._url} ({self._size} bytes, in S3)>"
        return f"<S3Object {self._url} (object does not exist)>"

    __repr__ = __str__
