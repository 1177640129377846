"""`S3`, `AsyncS3`, `profile` and `parallel_map`, against moto's S3 server over the wire."""

from __future__ import annotations

import os
from pathlib import Path

import anyio
import boto3
import numpy as np
import pytest

import aflow
from aflow import S3, AsyncS3, parallel_map, profile
from aflow.multicore import MulticoreException, parallel_imap_unordered
from aflow.s3 import (
    MetaflowS3NotFound,
    MetaflowS3URLException,
    S3GetObject,
    S3PutObject,
)

MiB = 1 << 20


@pytest.fixture
def bucket_root(s3_datastore: tuple[str, str]) -> str:
    return s3_datastore[1].rsplit("/", 1)[0]  # s3://<fresh bucket>


def test_put_get_list_info_round_trip(bucket_root: str, tmp_path: Path) -> None:
    local = tmp_path / "file.bin"
    local.write_bytes(b"from a file")
    with S3(s3root=f"{bucket_root}/data", tmproot=str(tmp_path)) as s3:
        url = s3.put("a/one.txt", "one", content_type="text/plain", metadata={"k": 1})
        assert url == f"{bucket_root}/data/a/one.txt"
        assert s3.put_many([("a/two", b"two"), S3PutObject("a/b/three", value=b"3")]) == [
            ("a/two", f"{bucket_root}/data/a/two"),
            ("a/b/three", f"{bucket_root}/data/a/b/three"),
        ]
        s3.put_files([("files/f", str(local))])
        s3.put_files([("paths/f", local)])  # a path-like, as open() takes
        assert s3.put("a/two", b"changed", overwrite=False) == f"{bucket_root}/data/a/two"

        one = s3.get("a/one.txt")
        assert (one.text, one.blob, one.key, one.url, one.size) == ("one", b"one", "a/one.txt", url, 3)
        assert one.content_type == "text/plain" and one.metadata == {"k": 1} and one.exists
        assert os.path.dirname(one.path).startswith(str(tmp_path))
        assert s3.get("a/two").blob == b"two"  # overwrite=False left it alone
        assert s3.get("files/f").blob == s3.get("paths/f").blob == b"from a file"
        assert [o.blob for o in s3.get_many(["a/two", "a/one.txt"])] == [b"two", b"one"]
        ranged = s3.get(S3GetObject("a/one.txt", 1, 2))
        assert ranged.blob == b"ne" and ranged.range_info.total_size == 3

        paths = {(o.key, o.exists) for o in s3.list_paths(["a"])}
        assert paths == {("one.txt", True), ("two", True), ("b", False)}
        assert sorted(o.key for o in s3.list_recursive(["a"])) == ["b/three", "one.txt", "two"]
        assert sorted(o.key for o in s3.get_all()) == [
            "a/b/three", "a/one.txt", "a/two", "files/f", "paths/f",
        ]  # fmt: skip
        info = s3.info("a/one.txt")
        assert info.size == 3 and not info.downloaded and info.metadata == {"k": 1}

        with pytest.raises(MetaflowS3NotFound, match="a/missing"):
            s3.get("a/missing")
        assert not s3.get("a/missing", return_missing=True).exists
        assert not s3.info("a/missing", return_missing=True).exists
        with pytest.raises(MetaflowS3URLException, match="relative"):
            s3.get(f"{bucket_root}/data/a/two")
        tmpdir = os.path.dirname(one.path)
    assert not os.path.exists(tmpdir)  # downloads deleted on close


def test_full_urls_without_a_root(bucket_root: str, tmp_path: Path) -> None:
    with S3(tmproot=str(tmp_path)) as s3:
        s3.put(f"{bucket_root}/x/y", b"xy")
        assert s3.get(f"{bucket_root}/x/y").blob == b"xy"
        with pytest.raises(MetaflowS3URLException, match="not a full s3:// URL"):
            s3.get("x/y")


def test_large_objects_use_parts(
    bucket_root: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("AFLOW_TRANSFER_THRESHOLD", str(6 * MiB))
    monkeypatch.setenv("AFLOW_TRANSFER_PART_SIZE", str(5 * MiB))
    big = np.random.default_rng(1).integers(0, 255, 13 * MiB + 7, dtype=np.uint8).tobytes()
    (tmp_path / "big").write_bytes(big)
    with S3(s3root=f"{bucket_root}/big", tmproot=str(tmp_path)) as s3:
        s3.put("mem", big)
        s3.put_files([S3PutObject("file", path=str(tmp_path / "big"))])
        assert s3.get("mem").blob == big and s3.get("file").blob == big
    # Multipart: S3's ETag of a multipart object ends with its part count.
    client = boto3.client("s3", endpoint_url=os.environ["AFLOW_S3_ENDPOINT_URL"])
    etag = client.head_object(Bucket=bucket_root[5:], Key="big/mem")["ETag"]
    assert etag.strip('"').endswith("-3")


def test_async_client_from_a_running_loop(bucket_root: str, tmp_path: Path) -> None:
    async def main() -> list[bytes]:
        async with AsyncS3(s3root=f"{bucket_root}/async", tmproot=str(tmp_path)) as s3:
            await s3.put_many([(f"k{i}", bytes([i])) for i in range(20)])
            return [o.blob for o in await s3.get_many([f"k{i}" for i in range(20)])]

    assert anyio.run(main) == [bytes([i]) for i in range(20)]


def test_s3_run_self_in_a_flow(s3_datastore: tuple[str, str], tmp_path: Path) -> None:
    from s3_client_flow import S3ClientFlow

    datastore, root = s3_datastore
    run = anyio.run(lambda: aflow.run_flow(S3ClientFlow, datastore=datastore, datastore_root=root))
    assert run.successful, run.error
    assert run.data.text == "hello from S3ClientFlow"
    assert run.data.parts == [("a", b"A"), ("b", b"B")]
    assert run.data.root == f"{root}/data/S3ClientFlow/{run.id}"
    assert run.data.url == f"{run.data.root}/greeting.txt"
    # A past run's prefix, from the client.
    past = aflow.Run(f"S3ClientFlow/{run.id}", datastore=datastore, datastore_root=root)
    with S3(run=past, tmproot=str(tmp_path)) as s3:
        assert s3.get("parts/a").blob == b"A"


def test_run_self_outside_a_step_says_what_to_do() -> None:
    from s3_client_flow import S3ClientFlow

    with pytest.raises(MetaflowS3URLException, match="inside a running step"):
        S3(run=S3ClientFlow(use_cli=False))


def test_profile_prints_or_adds_up(capsys: pytest.CaptureFixture[str]) -> None:
    with profile("load"):
        pass
    out = capsys.readouterr().out
    assert "PROFILE: load starting" in out and "PROFILE: load completed in" in out
    stats: dict[str, int] = {}
    for _ in range(2):
        with profile("x", stats_dict=stats):
            pass
    assert set(stats) == {"x"} and capsys.readouterr().out == ""


def test_parallel_map_keeps_order_and_reports_failures() -> None:
    offset = 10  # a closure: the children are forked, nothing is pickled on the way in
    assert parallel_map(lambda x: (x + offset, os.getpid()), range(6), max_parallel=3)[0][0] == 10
    results = parallel_map(lambda x: x * x, range(50), max_parallel=4)
    assert results == [x * x for x in range(50)]
    assert len({pid for _, pid in parallel_map(lambda x: (x, os.getpid()), range(4))}) == 4
    assert sorted(parallel_imap_unordered(lambda x: -x, [1, 2, 3])) == [-3, -2, -1]
    big = parallel_map(lambda n: b"x" * n, [4 * MiB])  # more than a pipe holds at once
    assert len(big[0]) == 4 * MiB

    def boom(x: int) -> int:
        if x == 3:
            raise ValueError("three is bad")
        return x

    with pytest.raises(MulticoreException, match="ValueError: three is bad"):
        parallel_map(boom, range(5), max_parallel=2)
