"""The GCS datastore over the wire, against gcp-storage-emulator started by the test session (the
contract every store keeps is in test_store_contract.py)."""

from __future__ import annotations

import asyncio
import os
import re
import threading
from collections.abc import Awaitable, Callable
from typing import TypeVar

import anyio
import pytest

from aflow.exception import DataStoreError
from aflow.stores import gcs
from aflow.stores.factory import open_store
from aflow.stores.gcs import GCSStore

T = TypeVar("T")
MiB = 1 << 20


def run(root: str, body: Callable[[GCSStore], Awaitable[T]]) -> T:
    """`body(store)` on a fresh event loop, closing the store's client after."""

    async def main() -> T:
        store = GCSStore(root)
        try:
            return await body(store)
        finally:
            await store.aclose()

    return asyncio.run(main())


async def leftovers(store: GCSStore) -> list[str]:
    """Every object in the bucket below the store's upload folder (parts of composite uploads)."""
    page = await store._storage().list_objects(
        store.bucket, params={"prefix": f"{store.prefix}/{gcs.UPLOADS}/"}
    )
    return [item["name"] for item in page.get("items", [])]


@pytest.fixture
def small_parts(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AFLOW_TRANSFER_THRESHOLD", str(5 * MiB))
    monkeypatch.setenv("AFLOW_TRANSFER_PART_SIZE", str(5 * MiB))
    monkeypatch.setenv("AFLOW_TRANSFER_CONCURRENCY", "3")


def test_constructing_touches_nothing() -> None:
    threads = threading.active_count()
    store = GCSStore("gs://some-bucket/some/prefix/")
    blocking = store.blocking()
    assert store.url == "gs://some-bucket/some/prefix"
    assert (store.bucket, store.prefix) == ("some-bucket", "some/prefix")
    assert GCSStore("gs://bare").url == "gs://bare"
    assert threading.active_count() == threads and not store._clients and blocking.url == ""
    with pytest.raises(DataStoreError, match="BUCKET"):
        GCSStore("gs:///x")
    assert isinstance(open_store("gs", "gs://b/p"), GCSStore)




def test_large_round_trip_in_parts(gcs_datastore: tuple[str, str], small_parts: None) -> None:
    _, root = gcs_datastore
    data = os.urandom(18 * MiB + 12345)
    cut = 3 * MiB + 7  # parts spanning the caller's buffers

    async def body(store: GCSStore) -> None:
        assert store.settings.part_size == 5 * MiB
        await store.put("F/data/ab/abcd", [memoryview(data)[:cut], bytearray(data[cut:])])
        got = await store.get("F/data/ab/abcd")
        assert len(got) == len(data) and got == data
        edge = 5 * MiB  # a range across the first part's end
        assert await store.get_range("F/data/ab/abcd", edge - 10, 20) == data[edge - 10 : edge + 10]
        assert await leftovers(store) == []
        assert await store.list("") == ["F"]

    run(root, body)


def test_compose_tree_past_32_sources(
    gcs_datastore: tuple[str, str], small_parts: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    _, root = gcs_datastore
    monkeypatch.setattr(gcs, "COMPOSE_MAX", 2)  # 4 parts -> 2 intermediate objects -> 1
    data = bytes(range(256)) * (16 * MiB // 256) + b"tail"

    async def body(store: GCSStore) -> None:
        await store.put("F/big", [data])
        assert await store.get("F/big") == data
        assert await leftovers(store) == []

    run(root, body)








def test_failed_upload_leaves_nothing(
    gcs_datastore: tuple[str, str], small_parts: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    _, root = gcs_datastore
    data = os.urandom(18 * MiB)
    real_upload = GCSStore._upload
    calls: list[str] = []

    async def failing_upload(self: GCSStore, name: str, payload: bytes) -> None:
        calls.append(name)
        if len(calls) == 3:
            raise RuntimeError("the disk caught fire")
        await real_upload(self, name, payload)

    monkeypatch.setattr(GCSStore, "_upload", failing_upload)

    async def body(store: GCSStore) -> None:
        with pytest.raises(RuntimeError, match="caught fire"):
            await store.put("F/data/ab/abcd", [data])
        assert not await store.exists("F/data/ab/abcd")
        assert await store.list("F/data/ab") == []
        assert await leftovers(store) == []

    run(root, body)
    assert len(calls) >= 3


def test_cancelled_upload_leaves_nothing(
    gcs_datastore: tuple[str, str], small_parts: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    _, root = gcs_datastore
    real_upload = GCSStore._upload
    two_parts_sent = anyio.Event()
    sent: list[str] = []

    async def slow_upload(self: GCSStore, name: str, payload: bytes) -> None:
        await real_upload(self, name, payload)
        sent.append(name)
        if len(sent) == 2:
            two_parts_sent.set()
        await anyio.sleep(30)

    monkeypatch.setattr(GCSStore, "_upload", slow_upload)

    async def body(store: GCSStore) -> None:
        async with anyio.create_task_group() as tg:
            tg.start_soon(store.put, "F/data/cd/cdef", [os.urandom(18 * MiB)])
            await two_parts_sent.wait()
            tg.cancel_scope.cancel()
        monkeypatch.setattr(GCSStore, "_upload", real_upload)
        assert not await store.exists("F/data/cd/cdef")
        assert await leftovers(store) == []

    run(root, body)


def test_transient_errors_are_retried(
    gcs_datastore: tuple[str, str], small_parts: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    _, root = gcs_datastore
    real_upload = GCSStore._upload
    failed: set[str] = set()

    async def flaky_upload(self: GCSStore, name: str, payload: bytes) -> None:
        if name not in failed:
            failed.add(name)
            raise ConnectionResetError("connection reset by peer")
        await real_upload(self, name, payload)

    monkeypatch.setattr(GCSStore, "_upload", flaky_upload)
    data = os.urandom(11 * MiB)

    async def body(store: GCSStore) -> None:
        await store.put("F/small", [b"x"])
        await store.put("F/large", [data])
        assert await store.get("F/small") == b"x"
        assert await store.get("F/large") == data

    run(root, body)
    assert len(failed) == 4  # the small object and three parts, each failed once


def test_many_small_objects_share_one_client(gcs_datastore: tuple[str, str]) -> None:
    _, root = gcs_datastore

    async def body(store: GCSStore) -> None:
        keys = [f"F/data/{i:02x}/{i}" for i in range(100)]
        await asyncio.gather(*(store.put(k, [k.encode()]) for k in keys))
        got = await asyncio.gather(*(store.get(k) for k in keys))
        assert [bytes(g) for g in got] == [k.encode() for k in keys]
        assert len(store._clients) == 1

    run(root, body)




def test_check_passes_on_a_bucket_that_exists(gcs_datastore: tuple[str, str]) -> None:
    _, root = gcs_datastore
    run(root, lambda store: store.check())


def test_check_names_a_missing_bucket(gcs_datastore: tuple[str, str]) -> None:
    with pytest.raises(DataStoreError, match="bucket 'no-such-bucket' does not exist"):
        run("gs://no-such-bucket/prefix", lambda store: store.check())


def test_check_names_an_unreachable_endpoint(monkeypatch: pytest.MonkeyPatch) -> None:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    monkeypatch.setenv("STORAGE_EMULATOR_HOST", f"http://127.0.0.1:{port}")
    with pytest.raises(DataStoreError, match=re.escape(f"cannot reach GCS at http://127.0.0.1:{port}")):
        run("gs://bucket/prefix", lambda store: store.check())


def test_check_without_credentials(monkeypatch: pytest.MonkeyPatch, tmp_path) -> None:
    for name in ["STORAGE_EMULATOR_HOST", "GOOGLE_APPLICATION_CREDENTIALS"]:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("CLOUDSDK_CONFIG", str(tmp_path))  # no gcloud ADC file there
    with pytest.raises(DataStoreError, match="GOOGLE_APPLICATION_CREDENTIALS"):
        run("gs://bucket/prefix", lambda store: store.check())
    monkeypatch.setenv("GOOGLE_APPLICATION_CREDENTIALS", str(tmp_path / "missing.json"))
    with pytest.raises(DataStoreError, match=r"missing\.json"):
        run("gs://bucket/prefix", lambda store: store.check())
