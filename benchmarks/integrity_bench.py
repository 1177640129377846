"""What blob verification and fsync cost, each beside the same operation without it, in one run.

    python benchmarks/integrity_bench.py [--repeat 5] [--records 1000]

- 80 MB numpy artifact, read: the store's get + unpickle (what aflow did before blobs were checked)
  against load_ref_blob (get, SHA-256 check) + unpickle; both then sum the array, as a step would.
- 80 MB numpy artifact, write: LocalFiles.put of its blob, durable (fsync of the file, then of its
  folder) against the put as it was before (temporary file and rename, no fsync).
- 1,000 task records, each into a new task folder as a foreach's children write them: durable
  against the put as it was before.
`benchmarks/core_bench.py --baseline REF` measures the same costs end to end (flows, processes).
"""

from __future__ import annotations

import argparse
import functools
import os
import statistics
import tempfile
import time
from collections.abc import Callable

import numpy as np

from aflow.stores import artifacts as art
from aflow.stores.base import Buffer
from aflow.stores.local import LocalFiles
from aflow.stores.records import TaskRecord


def put_unsynced(store: LocalFiles, key: str, parts: list[Buffer]) -> None:
    """LocalFiles.put as it was before fsync (temporary file, rename): the baseline."""
    path = os.path.join(store.url, key)
    os.makedirs(os.path.dirname(path), exist_ok=True)
    tmp = f"{path}.tmp"
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
    for part in parts:
        view = memoryview(part).cast("B")
        while view:
            view = view[os.write(fd, view) :]
    os.close(fd)
    os.replace(tmp, path)


def best(fn: Callable[[int], object], repeat: int) -> float:
    times = []
    for i in range(repeat):
        began = time.perf_counter()
        fn(i)
        times.append(time.perf_counter() - began)
    return statistics.median(times)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeat", type=int, default=5)
    ap.add_argument("--records", type=int, default=1000)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory(prefix="integrity-bench-", dir=".") as root:
        store = LocalFiles(root)
        arr = np.arange(10_000_000, dtype=np.float64)
        s = art.serialize(arr, "arr")
        ref = art.save_blob(store, "F", s)
        key = art.blob_key("F", s.digest)

        def read_plain(_: int) -> float:
            return float(art.deserialize(store.get(key)).sum())

        def read_checked(_: int) -> float:
            return float(art.deserialize(art.load_ref_blob(store, "F", ref)).sum())

        def write_durable(i: int) -> None:
            store.put(f"F/w/{i}", s.parts)

        def write_plain(i: int) -> None:
            put_unsynced(store, f"F/w/{i}p", s.parts)

        record = TaskRecord("F", "1", "work", "0").pack()

        def records(durable: bool) -> Callable[[int], None]:
            put = store.put if durable else functools.partial(put_unsynced, store)

            def write(i: int) -> None:
                for n in range(args.records):
                    put(f"F/{i}{'d' if durable else 'p'}/work/{n}/0.mpk", [record])

            return write

        rows = [
            (
                "80 MB artifact: read + sum",
                best(read_plain, args.repeat),
                best(read_checked, args.repeat),
            ),
            ("80 MB artifact: write", best(write_plain, args.repeat), best(write_durable, args.repeat)),
            (
                f"{args.records:,} task records, new folders",
                best(records(False), args.repeat),
                best(records(True), args.repeat),
            ),
        ]
    print(
        f"{'operation':<34}  {'without s':>10}  {'with s':>10}  {'ratio':>6}   (median of {args.repeat})"
    )
    labels = ("verification", "fsync", "fsync")
    for (name, without, with_), what in zip(rows, labels, strict=True):
        print(f"{name:<34}  {without:>10.3f}  {with_:>10.3f}  {with_ / without:>5.2f}x  {what}")


if __name__ == "__main__":
    main()
