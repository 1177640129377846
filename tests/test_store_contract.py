"""The object-store contract (aflow/stores/base.py), checked the same way on every store: in memory,
local files, S3 (moto's server), Azure Blob (Azurite) and GCS (gcp-storage-emulator), over the wire.

What each store does beyond the contract (multipart uploads, retries, credentials, its `check()`
messages) is tested in its own file; what every store must do is here, once.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any

import anyio
import pytest

from aflow.stores.base import NotFound, ObjectStore
from aflow.stores.factory import open_store
from aflow.stores.memory import MemoryStore

MiB = 1 << 20
STORES = ["memory", "local", "s3", "azure", "gs"]
SERVED_BY = {"s3": "s3_datastore", "azure": "azure_datastore", "gs": "gcs_datastore"}


@pytest.fixture(params=STORES)
def make_store(
    request: pytest.FixtureRequest, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Iterator[Callable[[], ObjectStore]]:
    """Opens a store on one fresh root (each call a new client on it, as each process makes)."""
    kind = request.param
    # Small transfer parts, so an object of a few MiB already travels in parts where a store cuts it.
    monkeypatch.setenv("AFLOW_TRANSFER_THRESHOLD", str(5 * MiB))
    monkeypatch.setenv("AFLOW_TRANSFER_PART_SIZE", str(5 * MiB))
    monkeypatch.setenv("AFLOW_TRANSFER_CONCURRENCY", "3")
    if kind == "memory":
        memory = MemoryStore()
        yield lambda: memory
    elif kind == "local":
        yield lambda: open_store("local", str(tmp_path / "store"))
    else:
        name, root = request.getfixturevalue(SERVED_BY[kind])
        yield lambda: open_store(name, root)


def on(make_store: Callable[[], ObjectStore], body: Callable[[ObjectStore], Awaitable[Any]]) -> Any:
    """`body(store)` on a fresh event loop, with the store checked first and closed after."""

    async def main() -> Any:
        store = make_store()
        try:
            await store.check()
            return await body(store)
        finally:
            await store.aclose()

    return anyio.run(main)


def test_objects_round_trip_from_any_buffers(make_store: Callable[[], ObjectStore]) -> None:
    async def body(store: ObjectStore) -> None:
        await store.put("F/1/start/1/0.mpk", [b"hello ", memoryview(b"wide "), bytearray(b"world")])
        got = await store.get("F/1/start/1/0.mpk")
        assert got == b"hello wide world"
        assert not memoryview(got).readonly  # a writable buffer: arrays loaded from it can change
        await store.put("F/1/start/1/0.mpk", [b"overwritten"])
        assert await store.get("F/1/start/1/0.mpk") == b"overwritten"
        await store.put("F/empty", [])
        assert await store.get("F/empty") == b"" and await store.exists("F/empty")

    on(make_store, body)


def test_an_object_in_parts_comes_back_whole(make_store: Callable[[], ObjectStore]) -> None:
    data = os.urandom(11 * MiB + 12345)
    cut = 3 * MiB + 7  # the caller's buffers do not end on part boundaries

    async def body(store: ObjectStore) -> None:
        await store.put("F/data/ab/big", [memoryview(data)[:cut], bytearray(data[cut:])])
        got = await store.get("F/data/ab/big")
        assert len(got) == len(data) and bytes(got) == data
        edge = 5 * MiB  # a range across the first part's end
        assert await store.get_range("F/data/ab/big", edge - 10, 20) == data[edge - 10 : edge + 10]

    on(make_store, body)


def test_ranges_read_like_pread(make_store: Callable[[], ObjectStore]) -> None:
    async def body(store: ObjectStore) -> None:
        await store.put("F/items", [b"0123456789"])
        assert await store.get_range("F/items", 2, 3) == b"234"
        assert await store.get_range("F/items", 8, 10) == b"89"  # short at the end
        assert await store.get_range("F/items", 20, 5) == b""  # past the end
        assert await store.get_range("F/items", 3, 0) == b""

    on(make_store, body)


def test_exists_is_true_only_for_objects(make_store: Callable[[], ObjectStore]) -> None:
    async def body(store: ObjectStore) -> None:
        await store.put("F/1/start/1/0.mpk", [b"x"])
        assert await store.exists("F/1/start/1/0.mpk")
        assert not await store.exists("F/1/start/1/1.mpk")
        assert not await store.exists("F/1/start")  # a "directory" is not an object
        assert not await store.exists("F/nothing/here")

    on(make_store, body)


def test_list_is_one_level_below_the_prefix(make_store: Callable[[], ObjectStore]) -> None:
    async def body(store: ObjectStore) -> None:
        for key in ["F/1/a/x", "F/1/a/y", "F/1/b/z", "F/10/q", "F/2/run.mpk", "G/1/run.mpk"]:
            await store.put(key, [b"."])
        assert await store.list("") == ["F", "G"]
        assert await store.list("F") == ["1", "10", "2"]
        assert await store.list("F/") == ["1", "10", "2"]
        assert await store.list("F/1") == ["a", "b"]
        assert await store.list("F/1/a") == ["x", "y"]
        assert await store.list("F/2") == ["run.mpk"]
        assert await store.list("F/3") == []
        assert await store.list("F/1/a/x") == []  # an object has nothing below it

    on(make_store, body)


def test_a_missing_object_is_not_found_and_names_its_url(make_store: Callable[[], ObjectStore]) -> None:
    async def body(store: ObjectStore) -> None:
        with pytest.raises(NotFound, match=r"F/1/end/7/0\.mpk does not exist") as e:
            await store.get("F/1/end/7/0.mpk")
        assert e.value.url == f"{store.url}/F/1/end/7/0.mpk"
        with pytest.raises(NotFound, match="F/data/zz"):
            await store.get_range("F/data/zz", 0, 10)
        with pytest.raises(NotFound, match="F/data/zz"):
            await store.get_range("F/data/zz", 0, 0)

    on(make_store, body)


def test_concurrent_puts_and_gets(make_store: Callable[[], ObjectStore]) -> None:
    keys = [f"F/data/{i:02x}/{i}" for i in range(40)]

    async def body(store: ObjectStore) -> None:
        got: dict[str, bytes] = {}

        async def get(key: str) -> None:
            got[key] = bytes(await store.get(key))

        async with anyio.create_task_group() as tg:
            for key in keys:
                tg.start_soon(store.put, key, [key.encode()])
        async with anyio.create_task_group() as tg:
            for key in keys:
                tg.start_soon(get, key)
        assert got == {key: key.encode() for key in keys}

    on(make_store, body)


def test_the_blocking_view_from_a_plain_thread_sees_the_async_store(
    make_store: Callable[[], ObjectStore],
) -> None:
    """What a task process does: the same store, synchronous, from a thread with no event loop."""
    store = make_store()
    files = store.blocking()
    results: dict[str, Any] = {}

    def task() -> None:
        try:
            files.put("F/1/start/1/0.log", [b"line one\n", b"line two\n"])
            results["get"] = bytes(files.get("F/1/start/1/0.log"))
            results["range"] = files.get_range("F/1/start/1/0.log", 5, 3)
            results["exists"] = files.exists("F/1/start/1/0.log"), files.exists("F/nope")
            results["list"] = files.list("F/1/start/1")
            try:
                files.get("F/1/start/1/1.log")
            except NotFound as e:
                results["missing"] = e.url
        except BaseException as e:
            results["error"] = e
        finally:
            files.close()  # a cloud view's loop thread, if it has one

    worker = threading.Thread(target=task)
    worker.start()
    worker.join(60)
    assert "error" not in results, results["error"]
    assert results == {
        "get": b"line one\nline two\n",
        "range": b"one",
        "exists": (True, False),
        "list": ["0.log"],
        "missing": f"{store.url}/F/1/start/1/1.log",
    }

    async def main() -> None:  # and the async store, on an event loop, sees what the thread wrote
        assert await store.get("F/1/start/1/0.log") == b"line one\nline two\n"
        await store.aclose()

    anyio.run(main)


def test_what_a_store_may_leave_out_is_declared(
    make_store: Callable[[], ObjectStore], request: pytest.FixtureRequest
) -> None:
    """`local`, `presigned_url`, `prewarm` and the blocking view's `close` are part of the protocol
    (callers never probe for them): a store without a presigned URL says None, a local store says
    it is local, and one that has a URL hands out one that reads the object."""
    import urllib.request

    prewarmed = make_store()
    prewarmed.prewarm()  # loads, sends nothing: no loop or thread is left behind

    async def body(store: ObjectStore) -> tuple[bool, str | None, bool]:
        await store.put("F/data/ab/abc", [b"payload"])
        return store.local, await store.presigned_url("F/data/ab/abc", 60), store.blocking().local

    local, url, blocking_local = on(make_store, body)
    is_local = request.node.callspec.params["make_store"] == "local"
    assert (local, blocking_local) == (is_local, is_local)
    if url is not None:
        with urllib.request.urlopen(url, timeout=30) as response:
            assert response.read() == b"payload"
    make_store().blocking().close()  # nothing was started: closing is a no-op
