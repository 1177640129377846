"""Artifact serialisation and content addressing.

An artifact is pickled with protocol 5; large buffers (numpy arrays, bytes-like objects) travel
out-of-band, written straight from the object's memory and read back into one buffer the new object
shares, so a large array is never copied on either side. The blob's key is the SHA-256 of its bytes:
equal values are stored once, and a task passes an artifact on by key, never by copy. Blobs small
enough live inline in the task record instead of in a file of their own.

Everything here is CPU-bound and synchronous: callers run it in a worker thread or in a task process,
never on an event loop.
"""

from __future__ import annotations

import ctypes
import hashlib
import mmap
import pickle
import struct
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from aflow.exception import ArtifactError
from aflow.stores.base import BlockingObjectStore, Buffer

BLOB_MAGIC = b"AFB1"
SPLIT_MAGIC = b"AFS1"
INLINE_LIMIT = 512
_ALIGN = 64
_HEAD = struct.Struct("<4sIQ")  # magic, number of out-of-band buffers, pickle length
_BUF = struct.Struct("<QQ")  # offset, length of one buffer
_U64 = struct.Struct("<Q")

ArtifactRef = dict[str, Any]
"""How a record names an artifact: {"k": blob key hash, "s": size} or {"v": inline blob bytes}."""


@dataclass(slots=True)
class Serialized:
    parts: list[Buffer]
    digest: str
    size: int

    def ref(self) -> ArtifactRef:
        if self.size <= INLINE_LIMIT:
            return {"v": b"".join(self.parts)}
        return {"k": self.digest, "s": self.size}

    @property
    def inline(self) -> bool:
        return self.size <= INLINE_LIMIT


def serialize(obj: Any, name: str = "artifact") -> Serialized:
    """Pickle `obj` into blob parts (header, pickle, aligned raw buffers) and hash them."""
    buffers: list[pickle.PickleBuffer] = []
    try:
        data = pickle.dumps(obj, protocol=5, buffer_callback=buffers.append)
    except Exception as e:
        raise ArtifactError(
            f"artifact '{name}' ({type(obj).__name__}) cannot be pickled: {e}. "
            "Keep only picklable values on self (open files, sockets, locks and lambdas are not)."
        ) from None
    raws = [b.raw() for b in buffers]
    header_len = _HEAD.size + _BUF.size * len(raws)
    parts: list[Buffer] = [b"", data]
    table = []
    pos = header_len + len(data)
    for raw in raws:
        pad = -pos % _ALIGN
        if pad:
            parts.append(bytes(pad))
            pos += pad
        table.append(_BUF.pack(pos, raw.nbytes))
        parts.append(raw)
        pos += raw.nbytes
    parts[0] = _HEAD.pack(BLOB_MAGIC, len(raws), len(data)) + b"".join(table)
    if pos <= INLINE_LIMIT:
        return Serialized(parts, "", pos)  # lives in the record: no key, so no hash
    h = hashlib.sha256()
    for part in parts:
        h.update(part)
    return Serialized(parts, h.hexdigest(), pos)


def deserialize(blob: Buffer) -> Any:
    """Inverse of serialize; out-of-band buffers are views into `blob` (no copy)."""
    view = memoryview(blob)
    magic, nbuf, plen = _HEAD.unpack_from(view, 0)
    if magic != BLOB_MAGIC:
        raise ArtifactError("not an aflow artifact blob (bad magic)")
    pos = _HEAD.size
    buffers = []
    for _ in range(nbuf):
        off, length = _BUF.unpack_from(view, pos)
        buffers.append(view[off : off + length])
        pos += _BUF.size
    return pickle.loads(view[pos : pos + plen], buffers=buffers)


def blob_key(flow: str, digest: str) -> str:
    return f"{flow}/data/{digest[:2]}/{digest}"


def save_blob(store: BlockingObjectStore, flow: str, s: Serialized) -> ArtifactRef:
    """Store a serialized artifact (unless inline or already stored) and return its ref."""
    if not s.inline:
        key = blob_key(flow, s.digest)
        if not store.exists(key):
            store.put(key, s.parts)
    return s.ref()


def load_ref_blob(store: BlockingObjectStore, flow: str, ref: ArtifactRef) -> Buffer:
    if "v" in ref:
        return ref["v"]
    return store.get(blob_key(flow, ref["k"]))


def same_value(a: ArtifactRef, b: ArtifactRef) -> bool:
    return a.get("k", a.get("v")) == b.get("k", b.get("v"))


# -- foreach items -----------------------------------------------------------------------------
# A split's items are one blob: a count, an offset table and the items pickled one after another,
# so child i reads its own item with two ranged reads whatever the width of the foreach.


def serialize_items(items: Iterable[Any], name: str) -> tuple[list[Buffer], str, int]:
    pickled = []
    for i, item in enumerate(items):
        try:
            pickled.append(pickle.dumps(item, protocol=5))
        except Exception as e:
            raise ArtifactError(f"foreach item {i} of '{name}' cannot be pickled: {e}") from None
    offsets = [0]
    for p in pickled:
        offsets.append(offsets[-1] + len(p))
    head = SPLIT_MAGIC + _U64.pack(len(pickled)) + struct.pack(f"<{len(offsets)}Q", *offsets)
    parts: list[Buffer] = [head, *pickled]
    h = hashlib.sha256()
    for part in parts:
        h.update(part)
    return parts, h.hexdigest(), len(pickled)


def load_item(store: BlockingObjectStore, flow: str, digest: str, count: int, index: int) -> Any:
    key = blob_key(flow, digest)
    table = 4 + _U64.size
    start, end = struct.unpack("<QQ", store.get_range(key, table + 8 * index, 16))
    data_at = table + 8 * (count + 1)
    return pickle.loads(store.get_range(key, data_at + start, end - start))


# -- recognising an artifact that was loaded and left alone -------------------------------------
# A task re-saves every artifact it read, since it may have changed it in place. For a large one
# that costs a full hash. A blob loaded through a private file mapping (see LocalFiles.get) can be
# checked far more cheaply: if the object still pickles to the same header over the very same
# memory, and the kernel says none of those pages was copied on write, it is the stored value.


def unchanged_since_load(obj: Any, blob: Buffer) -> bool:
    """True only when `obj` is provably still the value stored in `blob` (a private file map)."""
    if not isinstance(blob, mmap.mmap):
        return False
    try:
        base = ctypes.addressof(ctypes.c_char.from_buffer(blob))
        buffers: list[pickle.PickleBuffer] = []
        data = pickle.dumps(obj, protocol=5, buffer_callback=buffers.append)
        view = memoryview(blob)
        _magic, nbuf, plen = _HEAD.unpack_from(view, 0)
        if nbuf != len(buffers) or nbuf == 0:
            return False
        table = _HEAD.size
        if view[table + _BUF.size * nbuf : table + _BUF.size * nbuf + plen] != data:
            return False
        for i, buf in enumerate(buffers):
            off, length = _BUF.unpack_from(view, table + _BUF.size * i)
            raw = buf.raw()
            if raw.nbytes != length or raw.readonly:
                return False
            if ctypes.addressof(ctypes.c_char.from_buffer(raw)) != base + off:
                return False
            if _pages_copied(base + off, length):
                return False
        return True
    except (OSError, ValueError, TypeError, BufferError, pickle.PicklingError):
        return False


def _pages_copied(addr: int, length: int) -> bool:
    """Whether any page of a private file mapping was written (is now anonymous, or swapped)."""
    page = mmap.PAGESIZE
    first, last = addr // page, (addr + length - 1) // page
    with open("/proc/self/pagemap", "rb", buffering=0) as f:
        f.seek(first * 8)
        entries = memoryview(f.read((last - first + 1) * 8)).cast("Q")
    present, swapped, file_page = 1 << 63, 1 << 62, 1 << 61
    return any(e & swapped or (e & present and not e & file_page) for e in entries)
