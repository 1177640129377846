"""The local store and the artifact format: content addressing, out-of-band buffers, atomic writes."""

from __future__ import annotations

import os
from pathlib import Path

import anyio
import numpy as np
import pytest

from aflow.exception import ArtifactError
from aflow.stores import artifacts as art
from aflow.stores.base import NotFound
from aflow.stores.local import LocalStore


def test_roundtrip_small_values_inline() -> None:
    s = art.serialize({"a": [1, 2, 3]})
    assert s.inline and "v" in s.ref()
    assert art.deserialize(s.ref()["v"]) == {"a": [1, 2, 3]}


def test_numpy_travels_out_of_band_and_loads_without_copy(tmp_path: Path) -> None:
    files = LocalStore(tmp_path).blocking()
    array = np.arange(1_000_000, dtype=np.float64)
    s = art.serialize(array)
    assert len(s.parts) >= 3  # header, pickle, (padding,) raw buffer
    assert any(isinstance(p, memoryview) and p.nbytes == array.nbytes for p in s.parts)
    ref = art.save_blob(files, "F", s)
    blob = art.load_ref_blob(files, "F", ref)
    loaded = art.deserialize(blob)
    np.testing.assert_array_equal(loaded, array)
    assert loaded.flags.writeable
    # The array shares the loaded blob's memory: no second copy.
    assert np.shares_memory(loaded, np.frombuffer(blob, dtype=np.uint8))
    assert loaded.ctypes.data % 16 == 0


def test_equal_values_are_stored_once(tmp_path: Path) -> None:
    files = LocalStore(tmp_path).blocking()
    a = art.save_blob(files, "F", art.serialize(np.zeros(10_000)))
    b = art.save_blob(files, "F", art.serialize(np.zeros(10_000)))
    assert a == b
    blobs = [f for _, _, fs in os.walk(tmp_path / "F" / "data") for f in fs]
    assert len(blobs) == 1


def test_unpicklable_artifact_names_it() -> None:
    with pytest.raises(ArtifactError, match="artifact 'handle'"):
        art.serialize(lambda: 1, "handle")


def test_split_items_read_one_at_a_time(tmp_path: Path) -> None:
    files = LocalStore(tmp_path).blocking()
    items = [{"i": i, "pad": "x" * i} for i in range(500)]
    parts, digest, count = art.serialize_items(iter(items), "items")
    files.put(art.blob_key("F", digest), parts)
    assert count == 500
    for i in (0, 1, 250, 499):
        assert art.load_item(files, "F", digest, count, i) == items[i]


def test_put_is_atomic_and_cleans_up(tmp_path: Path) -> None:
    files = LocalStore(tmp_path).blocking()

    files.put("a/b/key", [b"old"])
    with pytest.raises(TypeError):
        files.put("a/b/key", [b"new", object()])  # type: ignore[list-item]
    assert files.get("a/b/key") == b"old"
    assert os.listdir(tmp_path / "a" / "b") == ["key"]


def test_async_store_and_missing_keys(tmp_path: Path) -> None:
    store = LocalStore(tmp_path)

    async def main() -> None:
        await store.put("x/y", [b"hello ", memoryview(b"world")])
        assert await store.get("x/y") == b"hello world"
        assert await store.get_range("x/y", 6, 5) == b"world"
        assert await store.exists("x/y")
        assert await store.list("x") == ["y"]
        assert await store.list("nothing") == []
        with pytest.raises(NotFound):
            await store.get("x/z")

    anyio.run(main)
