"""The S3 adapter against boto3's s3transfer, on the same moto S3 server, in one run.

(1) A large artifact (default 1 GiB) uploaded and downloaded: aflow's S3Store (multipart parts cut
from the object's memory, concurrent ranged GETs into one buffer) against s3transfer's
upload_fileobj / download_fileobj with the same part size and concurrency. Each side runs in a
process of its own, so its peak RSS is its own. (2) 1,000 small artifacts written and read: the
adapter with concurrent calls on one client against one-at-a-time put_object / get_object.

    python benchmarks/s3_bench.py [--size-mib 1024] [--small 1000]

moto keeps objects in memory and is the slower side of every transfer (EMULATORS.md): compare the
two clients with each other, not with real S3.
"""

from __future__ import annotations

import argparse
import io
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

from moto_server import moto_server

MiB = 1 << 20
PART = 16 * MiB
CONCURRENCY = 8


def payload(size: int) -> memoryview:
    import numpy as np

    return memoryview(np.arange(size // 8, dtype=np.int64)).cast("B")


# -- the measured sides (each runs in its own process: `s3_bench.py --side NAME`) ---------------


def side_aflow_large(size: int, bucket: str) -> dict[str, float]:
    import anyio

    from aflow.stores.s3 import S3Store

    data = payload(size)
    store = S3Store(f"s3://{bucket}/aflow")

    async def main() -> tuple[float, float]:
        await store._client()  # made before the clock starts, as s3transfer's client is
        t0 = time.perf_counter()
        await store.put("big", [data])
        t1 = time.perf_counter()
        got = await store.get("big")
        t2 = time.perf_counter()
        assert len(got) == size and got[-8:] == data[-8:]
        await store.aclose()
        return t1 - t0, t2 - t1

    up, down = anyio.run(main)
    return {"upload_s": up, "download_s": down}


class _Reader(io.RawIOBase):
    """A file over a memoryview, so s3transfer reads the payload without a copy of it."""

    def __init__(self, view: memoryview) -> None:
        self.view, self.pos = view, 0

    def readable(self) -> bool:
        return True

    def readinto(self, b: bytearray) -> int:  # type: ignore[override]
        n = min(len(b), self.view.nbytes - self.pos)
        b[:n] = self.view[self.pos : self.pos + n]
        self.pos += n
        return n


class _Writer(io.RawIOBase):
    """A seekable file over one preallocated buffer, so downloads land in place."""

    def __init__(self, size: int) -> None:
        self.buffer, self.pos = bytearray(size), 0

    def writable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def seek(self, offset: int, whence: int = 0) -> int:
        self.pos = offset if whence == 0 else self.pos + offset
        return self.pos

    def tell(self) -> int:
        return self.pos

    def write(self, b: bytes) -> int:  # type: ignore[override]
        n = len(b)
        self.buffer[self.pos : self.pos + n] = b
        self.pos += n
        return n


def side_s3transfer_large(size: int, bucket: str) -> dict[str, float]:
    import boto3
    from boto3.s3.transfer import TransferConfig

    data = payload(size)
    client = boto3.client("s3", endpoint_url=os.environ["AFLOW_S3_ENDPOINT_URL"])
    config = TransferConfig(
        multipart_threshold=PART, multipart_chunksize=PART, max_concurrency=CONCURRENCY
    )
    t0 = time.perf_counter()
    client.upload_fileobj(io.BufferedReader(_Reader(data)), bucket, "s3transfer/big", Config=config)
    t1 = time.perf_counter()
    out = _Writer(size)
    client.download_fileobj(bucket, "s3transfer/big", out, Config=config)
    t2 = time.perf_counter()
    assert out.buffer[-8:] == data[-8:]
    return {"upload_s": t1 - t0, "download_s": t2 - t1}


def side_aflow_small(count: int, bucket: str) -> dict[str, float]:
    import functools

    import anyio

    from aflow.stores.s3 import S3Store
    from aflow.stores.transfer import gather

    store = S3Store(f"s3://{bucket}/aflow-small")
    blobs = [os.urandom(1024) for _ in range(count)]

    async def main() -> tuple[float, float]:
        t0 = time.perf_counter()
        await gather([functools.partial(store.put, f"k{i}", [b]) for i, b in enumerate(blobs)])
        t1 = time.perf_counter()
        got = await gather([functools.partial(store.get, f"k{i}") for i in range(count)])
        t2 = time.perf_counter()
        assert [bytes(g) for g in got] == blobs
        await store.aclose()
        return t1 - t0, t2 - t1

    put, get = anyio.run(main)
    return {"write_s": put, "read_s": get}


def side_sequential_small(count: int, bucket: str) -> dict[str, float]:
    import boto3

    client = boto3.client("s3", endpoint_url=os.environ["AFLOW_S3_ENDPOINT_URL"])
    blobs = [os.urandom(1024) for _ in range(count)]
    t0 = time.perf_counter()
    for i, b in enumerate(blobs):
        client.put_object(Bucket=bucket, Key=f"seq/k{i}", Body=b)
    t1 = time.perf_counter()
    got = [client.get_object(Bucket=bucket, Key=f"seq/k{i}")["Body"].read() for i in range(count)]
    t2 = time.perf_counter()
    assert got == blobs
    return {"write_s": t1 - t0, "read_s": t2 - t1}


SIDES = {
    "aflow_large": side_aflow_large,
    "s3transfer_large": side_s3transfer_large,
    "aflow_small": side_aflow_small,
    "sequential_small": side_sequential_small,
}


def best(rounds: list[dict[str, float]]) -> dict[str, float]:
    return {k: min(r[k] for r in rounds) for k in rounds[0]}


def median(rounds: list[dict[str, float]]) -> dict[str, float]:
    return {k: statistics.median(r[k] for r in rounds) for k in rounds[0]}


def run_side(name: str, amount: int, bucket: str, env: dict[str, str]) -> dict[str, float]:
    proc = subprocess.Popen(
        [sys.executable, __file__, "--side", name, "--amount", str(amount), "--bucket", bucket],
        stdout=subprocess.PIPE,
        env=env,
    )
    out = proc.stdout.read()  # type: ignore[union-attr]
    _pid, status, usage = os.wait4(proc.pid, 0)
    if os.waitstatus_to_exitcode(status) != 0:
        sys.exit(f"{name} failed")
    result = json.loads(out)
    result["peak_rss_mib"] = usage.ru_maxrss / 1024
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size-mib", type=int, default=1024)
    parser.add_argument("--small", type=int, default=1000)
    parser.add_argument(
        "--repeat", type=int, default=3, help="rounds; each side's best and median are shown"
    )
    parser.add_argument(
        "--latency-ms",
        type=float,
        default=20.0,
        help="also run the small artifacts through a proxy that holds each request this long, "
        "as a network round trip to S3 would (0: skip)",
    )
    parser.add_argument("--side", choices=SIDES)
    parser.add_argument("--amount", type=int)
    parser.add_argument("--bucket")
    args = parser.parse_args()
    if args.side:
        print(json.dumps(SIDES[args.side](args.amount, args.bucket)))
        return

    with moto_server("bench") as endpoint:
        env = dict(
            os.environ,
            AFLOW_S3_ENDPOINT_URL=endpoint,
            AWS_ACCESS_KEY_ID="bench",
            AWS_SECRET_ACCESS_KEY="bench",
            AWS_DEFAULT_REGION="us-east-1",
            AFLOW_TRANSFER_PART_SIZE=str(PART),
            AFLOW_TRANSFER_CONCURRENCY=str(CONCURRENCY),
        )
        size = args.size_mib * MiB
        # The server's first large allocation is slow on a fresh VM, whoever makes it, and a
        # 2-core machine is noisy: run the sides in turn, alternating which goes first, and keep
        # every round (each side's best and median are reported).
        large: dict[str, list[dict[str, float]]] = {"aflow_large": [], "s3transfer_large": []}
        small: dict[str, list[dict[str, float]]] = {"sequential_small": [], "aflow_small": []}
        for round_ in range(args.repeat):
            order = list(large) if round_ % 2 == 0 else list(large)[::-1]
            for name in order:
                large[name].append(run_side(name, size, "bench", env))
            for name in small:
                small[name].append(run_side(name, args.small, "bench", env))
        ours, theirs = best(large["aflow_large"]), best(large["s3transfer_large"])
        ours_mid, theirs_mid = median(large["aflow_large"]), median(large["s3transfer_large"])
        few, one_by_one = best(small["aflow_small"]), best(small["sequential_small"])
        slow_few, slow_one_by_one = {}, {}
        if args.latency_ms:
            sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests" / "servers"))
            from throttling_proxy import proxy

            with proxy(endpoint, delay=args.latency_ms / 1000) as slow:
                far = dict(env, AFLOW_S3_ENDPOINT_URL=slow)
                slow_one_by_one = run_side("sequential_small", args.small, "bench", far)
                slow_few = run_side("aflow_small", args.small, "bench", far)

    def rate(seconds: float) -> str:
        return f"{size / MiB / seconds:7.1f} MiB/s"

    print(
        f"large artifact, {args.size_mib} MiB, part {PART // MiB} MiB x {CONCURRENCY} in flight, "
        f"best of {args.repeat} rounds (median in brackets):"
    )
    for what in ("upload_s", "download_s"):
        print(
            f"  {what[:-2]:9} aflow {ours[what]:6.2f} s ({rate(ours[what])})   s3transfer "
            f"{theirs[what]:6.2f} s ({rate(theirs[what])})   aflow/s3transfer throughput "
            f"{theirs[what] / ours[what]:.2f}x ({theirs_mid[what] / ours_mid[what]:.2f}x)"
        )
    for name, rounds in large.items():
        times = ", ".join(f"{r['upload_s']:.2f}/{r['download_s']:.2f}" for r in rounds)
        print(f"    {name} rounds, upload/download s: {times}")
    ratio = ours["peak_rss_mib"] * MiB / size
    print(
        f"  peak RSS  aflow {ours['peak_rss_mib']:.0f} MiB ({ratio:.2f}x the artifact)   "
        f"s3transfer {theirs['peak_rss_mib']:.0f} MiB"
    )
    cases = [("on loopback", few, one_by_one)]
    if slow_few:
        cases.append((f"with {args.latency_ms:g} ms per request", slow_few, slow_one_by_one))
    for label, ours_small, theirs_small in cases:
        print(f"{args.small} small artifacts (1 KiB), {label}:")
        for what in ("write_s", "read_s"):
            print(
                f"  {what[:-2]:9} aflow {ours_small[what]:6.2f} s   one at a time "
                f"{theirs_small[what]:6.2f} s   speed-up {theirs_small[what] / ours_small[what]:.1f}x"
            )


if __name__ == "__main__":
    main()
