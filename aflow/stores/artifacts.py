"""Artifact serialisation and content addressing.

An artifact is pickled with protocol 5; large buffers (numpy arrays, bytes-like objects) travel
out-of-band, written straight from the object's memory and read back into one buffer the new object
shares, so a large array is never copied on either side. The blob's key is the SHA-256 of its bytes:
equal values are stored once, and a task passes an artifact on by key, never by copy. Blobs small
enough live inline in the task record instead of in a file of their own.

Everything here is CPU-bound and synchronous: callers run it in a worker thread or in a task process,
never on an event loop (load_ref_blob_async, for the client and the UI, hashes in a worker thread).
Every blob read here is checked against its hash (see integrity.py).
"""

from __future__ import annotations

import ctypes
import hashlib
import mmap
import pickle
import struct
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any, TypedDict

import anyio.to_thread

from aflow.exception import ArtifactError, DamagedData, DataStoreError
from aflow.stores.base import BlockingObjectStore, Buffer, NotFound, ObjectStore, store_path
from aflow.stores.integrity import blob_problem, check_blob, open_item, seal_item

BLOB_MAGIC = b"AFB1"
SPLIT_MAGIC = b"AFS1"  # items without seals
SEALED_SPLIT_MAGIC = b"AFS2"  # each item sealed with its CRC-32
INLINE_LIMIT = 512
_ALIGN = 64
_HEAD = struct.Struct("<4sIQ")  # magic, number of out-of-band buffers, pickle length
_BUF = struct.Struct("<QQ")  # offset, length of one buffer
_U64 = struct.Struct("<Q")

class ArtifactRef(TypedDict, total=False):
    """How a record names an artifact: {"k": blob key hash, "s": size} or {"v": inline blob bytes}."""

    k: str
    s: int
    v: bytes


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


def save_blob(
    store: BlockingObjectStore, flow: str, s: Serialized, what: str = "an artifact"
) -> ArtifactRef:
    """Store a serialized artifact (unless inline or already stored intact) and return its ref."""
    if not s.inline:
        put_blob(store, blob_key(flow, s.digest), s.parts, s.digest, s.size, what)
    return s.ref()


def put_blob(
    store: BlockingObjectStore,
    key: str,
    parts: list[Buffer],
    digest: str,
    size: int,
    what: str = "a blob",
) -> None:
    """Write a content-addressed blob unless the store already holds it intact.

    A file merely existing under the hash's name is not trusted: on a store read from local disk
    the existing copy is hashed, and a damaged one is replaced by these (known good) bytes. A cloud
    object is written whole or not at all, checksummed on upload, and hashed on every read, so
    there its existence is enough."""
    if store.local:
        try:
            held = blob_problem(store.get(key), digest, size) is None
        except NotFound:
            held = False
    else:
        held = store.exists(key)
    if not held:
        try:
            store.put(key, parts)
        except DataStoreError as e:  # a full disk, a refused write: say what was being saved
            named = DataStoreError(f"saving {what}: {e}")
            named.headline = e.headline
            raise named from None


async def put_blob_async(
    store: ObjectStore, key: str, parts: list[Buffer], digest: str, size: int
) -> None:
    """put_blob for the engine: the local store's check and write run in a worker thread."""
    if store.local:
        await anyio.to_thread.run_sync(put_blob, store.blocking(), key, parts, digest, size)
    elif not await store.exists(key):
        await store.put(key, parts)


def load_ref_blob(
    store: BlockingObjectStore, flow: str, ref: ArtifactRef, what: str = "an artifact"
) -> Buffer:
    """The blob `ref` names, verified against its hash; DamagedData names `what` and the path."""
    if "v" in ref:
        return ref["v"]  # inline: part of its record, which is checked as a whole
    key = blob_key(flow, ref["k"])
    blob = store.get(key)
    check_blob(blob, ref["k"], ref.get("s"), store_path(store.url, key), what, flow)
    return blob


async def load_ref_blob_async(
    store: ObjectStore, flow: str, ref: ArtifactRef, what: str = "an artifact"
) -> Buffer:
    """load_ref_blob for async readers (client, UI): the hash runs in a worker thread."""
    if "v" in ref:
        return ref["v"]
    key = blob_key(flow, ref["k"])
    blob = await store.get(key)
    path = store_path(store.url, key)
    await anyio.to_thread.run_sync(check_blob, blob, ref["k"], ref.get("s"), path, what, flow)
    return blob


def same_value(a: ArtifactRef, b: ArtifactRef) -> bool:
    return a.get("k", a.get("v")) == b.get("k", b.get("v"))


# -- foreach items -----------------------------------------------------------------------------
# A split's items are one blob: a count, an offset table and the items pickled one after another
# (each sealed with its CRC-32), so child i reads and checks its own item with two ranged reads
# whatever the width of the foreach.


def serialize_items(items: Iterable[Any], name: str) -> tuple[list[Buffer], str, int]:
    pickled = []
    for i, item in enumerate(items):
        try:
            pickled.append(seal_item(pickle.dumps(item, protocol=5)))
        except Exception as e:
            raise ArtifactError(f"foreach item {i} of '{name}' cannot be pickled: {e}") from None
    offsets = [0]
    for p in pickled:
        offsets.append(offsets[-1] + len(p))
    head = SEALED_SPLIT_MAGIC + _U64.pack(len(pickled)) + struct.pack(f"<{len(offsets)}Q", *offsets)
    parts: list[Buffer] = [head, *pickled]
    h = hashlib.sha256()
    for part in parts:
        h.update(part)
    return parts, h.hexdigest(), len(pickled)


def load_item(store: BlockingObjectStore, flow: str, digest: str, count: int, index: int) -> Any:
    key = blob_key(flow, digest)
    table = 4 + _U64.size
    entry = store.get_range(key, table + 8 * index, 16)
    path = store_path(store.url, key)
    damaged = f"foreach item {index} of {count}: its items blob {path} is damaged"
    if len(entry) != 16:
        raise DamagedData(f"{damaged} (truncated)", path)
    start, end = struct.unpack("<QQ", entry)
    data_at = table + 8 * (count + 1)
    data = store.get_range(key, data_at + start, end - start) if 0 <= start <= end else b""
    item = open_item(data)
    if item is None:
        # Items written before seals existed end in pickle's STOP; anything else is damage.
        legacy = len(data) == end - start and data.endswith(b".")
        if not legacy or store.get_range(key, 0, 4) != SPLIT_MAGIC:
            raise DamagedData(f"{damaged} (its item does not match its checksum)", path)
        item = data
    return pickle.loads(item)


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
