"""The Azure Blob datastore over the wire, against Azurite started by the test suite on 127.0.0.1 (the
contract every store keeps is in test_store_contract.py)."""

from __future__ import annotations

import os
import re
import threading
from collections.abc import Awaitable, Callable
from typing import Any

import anyio
import anyio.to_thread
import pytest
from azure.core.exceptions import ClientAuthenticationError, HttpResponseError
from azure.storage.blob.aio import BlobClient

from aflow.exception import DataStoreError
from aflow.stores.azure import AzureStore
from aflow.stores.base import NotFound
from aflow.stores.factory import open_store

MiB = 1 << 20


def run(fn: Callable[[], Awaitable[Any]]) -> Any:
    return anyio.run(fn)


def container_of(root: str) -> str:
    return root.removeprefix("az://").split("/")[0]


@pytest.fixture
def small_parts(monkeypatch: pytest.MonkeyPatch) -> None:
    """Blocks and ranged reads from 6 MiB on, in 5 MiB parts (Azure's and S3's floor)."""
    monkeypatch.setenv("AFLOW_TRANSFER_THRESHOLD", str(6 * MiB))
    monkeypatch.setenv("AFLOW_TRANSFER_PART_SIZE", str(5 * MiB))
    monkeypatch.setenv("AFLOW_TRANSFER_CONCURRENCY", "3")




def test_many_small_objects_share_one_client(azure_datastore: tuple[str, str]) -> None:
    _, root = azure_datastore
    store = AzureStore(root)

    async def main() -> None:
        async with anyio.create_task_group() as tg:
            for i in range(200):
                tg.start_soon(store.put, f"F/data/{i:03d}", [str(i).encode()])
        got: dict[int, bytes] = {}

        async def one(i: int) -> None:
            got[i] = bytes(await store.get(f"F/data/{i:03d}"))

        async with anyio.create_task_group() as tg:
            for i in range(200):
                tg.start_soon(one, i)
        assert got == {i: str(i).encode() for i in range(200)}
        assert len(store._connections) == 1
        await store.aclose()

    run(main)


def test_large_object_goes_as_blocks_and_comes_back_in_ranges(
    azure_datastore: tuple[str, str], small_parts: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    _, root = azure_datastore
    store = AzureStore(root)
    payload = os.urandom(18 * MiB)
    # Buffers whose edges do not fall on part boundaries: some parts span two of them.
    parts = [memoryview(payload)[: 3 * MiB + 7], payload[3 * MiB + 7 : 11 * MiB], payload[11 * MiB :]]
    downloads: list[tuple[int, int]] = []
    real_download = BlobClient.download_blob

    async def counting_download(
        self: BlobClient, offset: Any = None, length: Any = None, **kw: Any
    ) -> Any:
        downloads.append((offset, length))
        return await real_download(self, offset, length, **kw)

    monkeypatch.setattr(BlobClient, "download_blob", counting_download)

    async def main() -> None:
        await store.put("F/data/ab/big", parts)
        blocks, uncommitted = await store._blob("F/data/ab/big").get_block_list("all")
        assert [b.size for b in blocks] == [5 * MiB] * 3 + [3 * MiB]
        assert not uncommitted
        got = await store.get("F/data/ab/big")
        assert len(got) == len(payload) and got == payload
        # One read of the first 6 MiB, then the rest of the 5 MiB parts it does not cover.
        assert sorted(downloads) == [
            (0, 6 * MiB),
            (6 * MiB, 4 * MiB),
            (10 * MiB, 5 * MiB),
            (15 * MiB, 3 * MiB),
        ]
        assert await store.get_range("F/data/ab/big", 17 * MiB, 10) == payload[17 * MiB : 17 * MiB + 10]
        await store.aclose()

    run(main)


def test_an_overwrite_during_a_large_read_is_not_mixed_in(
    azure_datastore: tuple[str, str], small_parts: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    _, root = azure_datastore
    store = AzureStore(root)
    old, new = b"a" * (12 * MiB), b"b" * (12 * MiB)
    real_read_into = AzureStore._read_into
    overwritten: list[bool] = []

    async def read_into(self: AzureStore, *args: Any) -> None:
        if not overwritten:  # another writer replaces the record between the head and the rest
            overwritten.append(True)
            await self.put("F/1/run.mpk", [new])
        await real_read_into(self, *args)

    monkeypatch.setattr(AzureStore, "_read_into", read_into)

    async def main() -> None:
        await store.put("F/1/run.mpk", [old])
        assert await store.get("F/1/run.mpk") == new  # read again whole, never half and half
        await store.aclose()

    run(main)


def test_throttled_requests_are_retried(
    azure_datastore: tuple[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    _, root = azure_datastore
    store = AzureStore(root)
    real_upload = BlobClient.upload_blob
    refusals = [429, 429]

    async def upload_blob(self: BlobClient, *args: Any, **kw: Any) -> Any:
        if refusals:
            error = HttpResponseError(message="Too Many Requests")
            error.status_code = refusals.pop()
            raise error
        return await real_upload(self, *args, **kw)

    monkeypatch.setattr(BlobClient, "upload_blob", upload_blob)

    async def main() -> None:
        await store.put("F/x", [b"1"])
        assert not refusals and await store.get("F/x") == b"1"
        await store.aclose()

    run(main)


def test_stores_on_neighbouring_prefixes_see_only_their_own(azure_datastore: tuple[str, str]) -> None:
    _, root = azure_datastore
    store = AzureStore(root)
    neighbour = AzureStore(f"az://{container_of(root)}/other")

    async def main() -> None:
        await store.put("F/1/run.mpk", [b"x"])
        await neighbour.put("F/9/run.mpk", [b"x"])
        assert await store.list("F") == ["1"]
        assert await neighbour.list("F") == ["9"]
        assert await store.list("") == ["F"]
        await store.aclose()
        await neighbour.aclose()

    run(main)


def test_opening_starts_nothing(azure_datastore: tuple[str, str]) -> None:
    threads = threading.active_count()
    store = open_store("azure", azure_datastore[1])
    store.blocking()
    assert isinstance(store, AzureStore)
    assert threading.active_count() == threads  # nothing started before first use


def failing_after(staged: int, monkeypatch: pytest.MonkeyPatch, fail: Callable[[], None]) -> list[int]:
    """Make BlobClient.stage_block stage `staged` blocks for real, then call `fail` instead."""
    calls: list[int] = []
    done: list[int] = []
    real_stage = BlobClient.stage_block

    async def stage_block(self: BlobClient, block_id: str, data: Any, *args: Any, **kw: Any) -> Any:
        calls.append(1)
        if len(calls) > staged:
            while len(done) < staged:  # let the first blocks reach the server
                await anyio.sleep(0.01)
            fail()
            await anyio.sleep_forever()
        result = await real_stage(self, block_id, data, *args, **kw)
        done.append(1)
        return result

    monkeypatch.setattr(BlobClient, "stage_block", stage_block)
    return calls


def test_failed_large_put_leaves_no_blob(
    azure_datastore: tuple[str, str], small_parts: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    _, root = azure_datastore
    store = AzureStore(root)

    def lose_the_network() -> None:
        raise ConnectionResetError("connection reset by peer")

    real_stage = BlobClient.stage_block
    failing_after(2, monkeypatch, lose_the_network)

    async def main() -> None:
        await store.put("F/1/run.mpk", [b"old"])
        for key in ("F/data/ab/new", "F/1/run.mpk"):
            with pytest.raises(ConnectionResetError):
                await store.put(key, [os.urandom(18 * MiB)])
        # Blocks were staged on the server, yet nothing is visible and the old object is intact.
        container = store._connection().service.get_container_client(container_of(root))
        staged = [b.name async for b in container.list_blobs(include=["uncommittedblobs"])]
        assert "prefix/F/data/ab/new" in staged
        assert not await store.exists("F/data/ab/new")
        assert await store.list("F/data/ab") == []
        with pytest.raises(NotFound):
            await store.get("F/data/ab/new")
        assert await store.get("F/1/run.mpk") == b"old"
        await store.aclose()

    run(main)
    monkeypatch.setattr(BlobClient, "stage_block", real_stage)

    async def again() -> None:  # a new upload of the same key is not disturbed by the old blocks
        await store.put("F/data/ab/new", [b"y" * (7 * MiB)])
        assert await store.get("F/data/ab/new") == b"y" * (7 * MiB)
        await store.aclose()

    run(again)


def test_cancelled_large_put_leaves_no_blob(
    azure_datastore: tuple[str, str], small_parts: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    _, root = azure_datastore
    store = AzureStore(root)
    scopes: list[anyio.CancelScope] = []
    calls = failing_after(2, monkeypatch, lambda: scopes[0].cancel())  # Ctrl-C arrives mid-upload

    async def main() -> None:
        with anyio.CancelScope() as scope:
            scopes.append(scope)
            await store.put("F/data/cd/new", [os.urandom(18 * MiB)])
        assert scope.cancelled_caught and len(calls) >= 3
        assert not await store.exists("F/data/cd/new")
        await store.aclose()

    run(main)




def test_one_store_on_two_event_loops(azure_datastore: tuple[str, str]) -> None:
    _, root = azure_datastore
    store = AzureStore(root)

    async def first() -> None:
        await store.put("F/x", [b"1"])
        async with anyio.create_task_group() as tg:  # a portal's loop, running at the same time
            tg.start_soon(anyio.to_thread.run_sync, lambda: run(second))

    async def second() -> None:
        assert await store.get("F/x") == b"1"
        assert len(store._connections) == 2  # its own client: aiohttp sessions are per loop
        await store.aclose()

    async def main() -> None:
        await first()
        assert len(store._connections) == 1
        await store.aclose()
        assert not store._connections

    run(main)


def checked(store: AzureStore) -> None:
    async def main() -> None:
        try:
            await store.check()
        finally:
            await store.aclose()

    run(main)


def test_check_passes_on_a_usable_root(azure_datastore: tuple[str, str]) -> None:
    _, root = azure_datastore
    checked(AzureStore(root))


def test_check_names_a_missing_container(azure_datastore: tuple[str, str]) -> None:
    store = AzureStore("az://no-such-container/prefix")
    with pytest.raises(DataStoreError, match="container 'no-such-container' does not exist"):
        checked(store)

    async def put() -> None:
        try:
            await store.put("F/x", [b"1"])
        finally:
            await store.aclose()

    with pytest.raises(DataStoreError, match="does not exist"):
        run(put)


def test_check_names_wrong_credentials(
    azure_datastore: tuple[str, str], monkeypatch: pytest.MonkeyPatch, azurite: Any
) -> None:
    _, root = azure_datastore
    wrong_key = "d3Jvbmc=" * 11
    monkeypatch.setenv("AZURE_STORAGE_CONNECTION_STRING", azurite.connection_string(wrong_key))
    with pytest.raises(
        DataStoreError, match=r"refused the credentials.*AZURE_STORAGE_CONNECTION_STRING"
    ):
        checked(AzureStore(root))


def test_a_credential_that_gets_no_token_is_named(
    azure_datastore: tuple[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """azure-identity raises ClientAuthenticationError before any request is sent, so the storage
    SDK never sets the `error_code` it puts on the errors it answers: the message must not need it
    (reading it was an AttributeError that hid what to fix)."""
    _, root = azure_datastore

    async def no_token(self: BlobClient, *args: Any, **kw: Any) -> Any:
        raise ClientAuthenticationError("DefaultAzureCredential failed to retrieve a token")

    monkeypatch.setattr(BlobClient, "get_blob_properties", no_token)
    store = AzureStore(root)

    async def main() -> None:
        try:
            await store.exists("F/x")
        finally:
            await store.aclose()

    no_token_named = r"refused the credentials \(DefaultAzureCredential failed to retrieve a token\)"
    with pytest.raises(DataStoreError, match=no_token_named):
        run(main)


def test_check_without_credentials_says_what_to_set(
    azure_datastore: tuple[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    _, root = azure_datastore
    monkeypatch.delenv("AZURE_STORAGE_CONNECTION_STRING")
    with pytest.raises(
        DataStoreError, match=r"AZURE_STORAGE_CONNECTION_STRING.*AFLOW_AZURE_ACCOUNT_URL"
    ):
        checked(AzureStore(root))


def test_check_names_an_unreachable_endpoint(
    azure_datastore: tuple[str, str], monkeypatch: pytest.MonkeyPatch, azurite: Any
) -> None:
    from servers.azurite import free_port

    _, root = azure_datastore
    dead = azurite.connection_string().replace(str(azurite.port), str(free_port()))
    monkeypatch.setenv("AZURE_STORAGE_CONNECTION_STRING", dead)
    with pytest.raises(DataStoreError, match=re.escape("cannot reach http://127.0.0.1:")):
        checked(AzureStore(root))


def test_bad_roots_are_refused_without_network() -> None:
    with pytest.raises(DataStoreError, match="not a valid Azure container name"):
        AzureStore("az://X/prefix")
    with pytest.raises(DataStoreError, match="az://CONTAINER/PREFIX"):
        AzureStore("s3://bucket/prefix")
    assert AzureStore("az://bucket/a/b/").url == "az://bucket/a/b"
    assert AzureStore("az://bucket").url == "az://bucket"
