"""The S3 store over the wire, against moto's S3 server: faults, errors, roots (the contract every
store keeps is in test_store_contract.py)."""

from __future__ import annotations

import os

import anyio
import pytest

from aflow.exception import DataStoreError
from aflow.stores.base import NotFound
from aflow.stores.factory import open_store
from aflow.stores.s3 import S3Store

MiB = 1 << 20


@pytest.fixture
def small_parts(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AFLOW_TRANSFER_THRESHOLD", str(6 * MiB))
    monkeypatch.setenv("AFLOW_TRANSFER_PART_SIZE", str(5 * MiB))
    monkeypatch.setenv("AFLOW_TRANSFER_CONCURRENCY", "3")




class _ClientThatDropsPart3:
    """The real client, except that sending part 3 fails as a dropped connection would."""

    def __init__(self, client: object) -> None:
        self._client = client

    def __getattr__(self, name: str) -> object:
        return getattr(self._client, name)

    async def upload_part(self, **kwargs: object) -> object:
        if kwargs["PartNumber"] == 3:
            raise ConnectionResetError("connection reset while sending part 3")
        return await self._client.upload_part(**kwargs)  # type: ignore[attr-defined]


def test_failed_multipart_upload_leaves_nothing(
    s3_datastore: tuple[str, str], small_parts: None
) -> None:
    store = open_store(*s3_datastore)
    assert isinstance(store, S3Store)

    async def main() -> None:
        real = await store._client()
        store._client = lambda: _async(_ClientThatDropsPart3(real))  # type: ignore[method-assign]
        with pytest.raises(ConnectionResetError):
            await store.put("x/broken", [bytes(20 * MiB)])
        assert not await store.exists("x/broken")
        uploads = await real.list_multipart_uploads(Bucket=store.bucket)
        assert not uploads.get("Uploads"), "the multipart upload was aborted"
        del store._client
        await store.aclose()

    anyio.run(main)


async def _async(value: object) -> object:
    return value




def test_check_says_what_to_fix(s3_datastore: tuple[str, str], monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(DataStoreError, match="bucket 'no-such-bucket' does not exist"):
        anyio.run(open_store("s3", "s3://no-such-bucket/x").check)
    monkeypatch.delenv("AFLOW_DATASTORE_SYSROOT_S3", raising=False)
    with pytest.raises(DataStoreError, match="needs a root"):
        open_store("s3", None)
    with pytest.raises(DataStoreError, match="takes a root like s3://"):
        open_store("s3", "/tmp/x")


def test_throttling_and_dropped_connections_are_retried(
    s3_datastore: tuple[str, str],
    throttled_s3_endpoint: tuple[str, list[str]],
    monkeypatch: pytest.MonkeyPatch,
    small_parts: None,
) -> None:
    endpoint, faults = throttled_s3_endpoint
    monkeypatch.setenv("AFLOW_S3_ENDPOINT_URL", endpoint)
    store = open_store(*s3_datastore)
    big = bytes(range(256)) * (40 * 1024)  # 10 MiB: two parts, two ranged reads

    async def main() -> None:
        await store.put("t/small", [b"payload"])
        await store.put("t/big", [big])
        assert await store.get("t/small") == b"payload"
        assert await store.get("t/big") == big
        assert await store.list("t") == ["big", "small"]
        await store.aclose()

    anyio.run(main)
    assert "503" in faults and "reset" in faults


def test_a_root_without_prefix_and_a_missing_bucket(s3_datastore: tuple[str, str]) -> None:
    bucket = s3_datastore[1].removeprefix("s3://").split("/")[0]
    bare = open_store("s3", f"s3://{bucket}")  # a root with no prefix

    async def main() -> None:
        await bare.put("ten", [b"0123456789"])
        assert await bare.get_range("ten", 8, 5) == b"89"
        assert "ten" in await bare.list("")
        with pytest.raises(NotFound, match=f"s3://{bucket}/nothing"):
            await bare.get_range("nothing", 0, 5)
        await bare.aclose()

    anyio.run(main)
    gone = open_store("s3", "s3://no-such-bucket-here/x")
    with pytest.raises(DataStoreError, match="bucket 'no-such-bucket-here' does not exist"):
        anyio.run(gone.list, "")


def test_a_task_stopped_mid_upload_leaves_no_upload_behind(
    s3_datastore: tuple[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    import boto3
    from recovery import SlowUploadFlow

    import aflow

    monkeypatch.setenv("AFLOW_TRANSFER_THRESHOLD", str(5 * MiB))
    monkeypatch.setenv("AFLOW_TRANSFER_PART_SIZE", str(5 * MiB))
    monkeypatch.setenv("AFLOW_TRANSFER_CONCURRENCY", "1")
    name, root = s3_datastore
    run = anyio.run(lambda: aflow.run_flow(SlowUploadFlow, datastore=name, datastore_root=root))
    assert run.successful and "TimeoutException" in str(run["start"].task.data.upload_failure)
    bucket = root.removeprefix("s3://").split("/")[0]
    client = boto3.client("s3", endpoint_url=os.environ["AFLOW_S3_ENDPOINT_URL"])
    assert not client.list_multipart_uploads(Bucket=bucket).get("Uploads")
