"""Checking what the store hands back against what was written: blobs by their hash, records by a
CRC sealed into them.

A blob's key is the SHA-256 of its bytes, so a blob is verified by hashing it again: on every read
through the artifact layer (SHA-256 runs at about 1.5 GB/s here, 55 ms for 80 MB, small beside
what loading an artifact costs) and before a write is skipped because the blob is already stored.
A foreach's items blob is read in ranges, one item per child, so each item carries its own CRC-32.
A record (msgpack) ends with a `_crc` entry over everything before it; records written before it
existed carry none and are read as they are.

Nothing here touches a store: these are pure checks, safe in a worker thread or a task process.
"""

from __future__ import annotations

import hashlib
import struct
import zlib

from aflow.exception import DamagedData
from aflow.stores.base import Buffer

# A record's last entry: the key "_crc" and a 4-byte bin value (fixed width, so its place is known).
_CRC_ENTRY = b"\xa4_crc\xc4\x04"
_CRC_TAIL = len(_CRC_ENTRY) + 4
# A foreach item: its pickle, this mark, and the CRC-32 of the pickle.
ITEM_MARK = b"AFC1"
_U32 = struct.Struct("<I")

REPAIR_HINT = (
    "run `aflow verify {flow} --quarantine` to list and move aside what is damaged, then rerun "
    "(or resume) the runs that need it: a run that produces the same value stores it again"
)


def blob_problem(blob: Buffer, digest: str, size: int | None) -> str | None:
    """None when `blob` is what key `digest` promises, else what is wrong with it."""
    got = memoryview(blob).nbytes
    if size is not None and got != size:
        return f"{got} bytes where {size} were written"
    if hashlib.sha256(blob).hexdigest() != digest:
        return "its content does not match its SHA-256 (altered)"
    return None


def check_blob(blob: Buffer, digest: str, size: int | None, path: str, what: str, flow: str) -> None:
    """Raise DamagedData naming `what` (the artifact and its task) and `path` when `blob` is bad."""
    problem = blob_problem(blob, digest, size)
    if problem is not None:
        raise DamagedData(
            f"{what}: the blob {path} is damaged ({problem}); " + REPAIR_HINT.format(flow=flow),
            path,
            problem,
        )


def seal_record(packed: bytes) -> bytes:
    """`packed` is a msgpack map whose last entry is `_crc` with four zero bytes: fill them in."""
    body = packed[:-4]
    return body + _U32.pack(zlib.crc32(body))


def record_problem(data: Buffer) -> str | None:
    """What is wrong with a sealed record's bytes (None: intact, or from before seals)."""
    view = memoryview(data)
    sealed = view.nbytes >= _CRC_TAIL and view[-_CRC_TAIL:-4] == _CRC_ENTRY
    if sealed and zlib.crc32(view[:-4]) != _U32.unpack(view[-4:])[0]:
        return "its checksum does not match (altered or partly written)"
    return None


def damaged_record(path: str, reason: str) -> DamagedData:
    return DamagedData(
        f"the record {path} is damaged ({reason}); `aflow verify --quarantine` lists what is "
        "damaged in the store and moves it aside (a damaged task record: resume the run to redo "
        "the task)",
        path,
        reason,
    )


def seal_item(pickled: bytes) -> bytes:
    return pickled + ITEM_MARK + _U32.pack(zlib.crc32(pickled))


def open_item(data: bytes) -> bytes | None:
    """The pickle of a sealed foreach item, or None when the item carries no intact seal."""
    if len(data) < 9 or data[-8:-4] != ITEM_MARK:
        return None
    return data[:-8] if zlib.crc32(data[:-8]) == _U32.unpack(data[-4:])[0] else None
