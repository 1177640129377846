"""What tracking a wide remote foreach costs the scheduler: a 10,000-way foreach on @batch.

The AWS Batch emulator (tests/fakes/batch_server.py) runs in a process of its own and holds every
job in RUNNABLE, as a queue without free capacity would; moto (S3 + CloudWatch Logs) runs in
another. This process is the scheduler alone. Once every job waits in RUNNABLE, over a window of
polls it measures:
- submission calls for the foreach (target: 1, an array job);
- DescribeJobs calls per poll interval (target: at most ceil(N/100));
- the scheduler's CPU seconds per poll interval and its peak RSS (target: < 500 MB);
then cancels the run and checks that no job is left (terminations sent, jobs FAILED).

First it prints the bytes of task specs one array child reads (its own spec and 16 bytes of
offset table) for N = 100, 1,000 and 10,000 (target: independent of N).

The baseline, measured in the same run, is the same scheduler with the same flow but a 100-way
foreach: figures for N=10,000 are printed beside it, with their ratio.

    python benchmarks/remote_bench.py [--width 10000] [--window 20] [--poll 1.0]

`--kubernetes N[,N...]` runs only the Kubernetes end-to-end case instead (benchmarks/k8s_bench.py):
an N-way foreach whose children run to completion on the Kubernetes emulator, `--parallelism` (50) at
a time, with the Kubernetes requests per task by kind, the store bytes each child reads, the
scheduler's CPU per task, and their ratios between the widths.

`--batch N` runs only the AWS Batch end-to-end case instead (benchmarks/batch_bench.py): a 100-way
and an N-way foreach whose children run to completion on the Batch emulator, with per task the
Batch and CloudWatch Logs calls by kind, the store GETs and bytes read (by everyone, and by the live
tail of output), the scheduler's CPU, and the ratio N / 100 of each. `--batch-sleep S` makes each
child sleep S seconds (so the live tail has running tasks to read).
"""

from __future__ import annotations

import argparse
import json
import math
import os
import resource
import subprocess
import sys
import time
import uuid
from pathlib import Path

from moto_server import moto_server, s3_datastore_env

ROOT = Path(__file__).resolve().parent.parent
FLOWS = ROOT / "tests" / "remote_flows"

_FAKE = """
import json, sys, time
sys.path.insert(0, {tests!r})
from fakes.batch_server import FakeBatch
fake = FakeBatch(logs_endpoint={logs!r}, parallelism=4)
fake.hold_runnable()
fake.start()
print(json.dumps({{"url": fake.url}}), flush=True)
for line in sys.stdin:
    if line.strip() == "stats":
        calls = [(r.operation, r.time, len(r.body.get("jobs") or [])) for r in list(fake.requests)]
        jobs = fake.active_jobs()
        runnable = sum(1 for j in jobs if j.status == "RUNNABLE")
        print(json.dumps({{"calls": calls, "active": len(jobs), "runnable": runnable}}), flush=True)
    else:
        break
fake.stop()
"""


class Fake:
    """The Batch emulator in a process of its own, asked for its request log over stdin."""

    def __init__(self, logs_endpoint: str) -> None:
        code = _FAKE.format(tests=str(ROOT / "tests"), logs=logs_endpoint)
        self.proc = subprocess.Popen(
            [sys.executable, "-c", code], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
        )
        assert self.proc.stdout and self.proc.stdin
        self.url = json.loads(self.proc.stdout.readline())["url"]

    def stats(self) -> dict:
        assert self.proc.stdout and self.proc.stdin
        self.proc.stdin.write("stats\n")
        self.proc.stdin.flush()
        return json.loads(self.proc.stdout.readline())

    def stop(self) -> None:
        assert self.proc.stdin
        self.proc.stdin.write("stop\n")
        self.proc.stdin.flush()
        self.proc.wait(timeout=60)


def cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def polls_in(calls: list, start: float, gap: float) -> list[int]:
    """DescribeJobs calls grouped into polls: calls closer than `gap` belong to one poll."""
    times = sorted(t for op, t, _ in calls if op == "DescribeJobs" and t >= start)
    polls: list[int] = []
    last = -math.inf
    for t in times:
        if t - last > gap:
            polls.append(0)
        polls[-1] += 1
        last = t
    return polls


def measure(width: int, window: float, poll: float, moto: str) -> dict[str, float]:
    import anyio

    from aflow import run_flow
    from aflow.engine.flow_loader import load_flow_file

    fake = Fake(moto)
    os.environ["AFLOW_BATCH_ENDPOINT_URL"] = fake.url
    os.environ["AFLOW_BATCH_POLL_SECONDS"] = str(poll)
    flow_cls = load_flow_file(str(FLOWS / "remote_foreach.py"))
    out: dict[str, float] = {"width": width}

    async def main() -> None:
        async with anyio.create_task_group() as tg:
            tg.start_soon(lambda: run_flow(flow_cls, {"width": width}))
            t0 = time.monotonic()
            while fake.stats()["active"] < width:  # submitted
                await anyio.sleep(0.5)
            out["submit_seconds"] = time.monotonic() - t0
            # The emulator takes a while to move 10,000 jobs to RUNNABLE (its own cost, not the
            # scheduler's), and the scheduler's first round describes every child: measure from
            # when they all wait there and that first round is over.
            first_round = math.ceil(width / 100) + 2
            while True:
                stats = fake.stats()
                described = sum(1 for op, _, _ in stats["calls"] if op == "DescribeJobs")
                if stats["runnable"] >= width and described >= first_round:
                    break
                await anyio.sleep(0.5)
            out["first_round_seconds"] = time.monotonic() - t0
            start_wall, start_cpu = time.time(), cpu_seconds()
            await anyio.sleep(window)
            out["cpu_per_poll"] = (cpu_seconds() - start_cpu) / (window / poll)
            stats = fake.stats()
            polls = polls_in(stats["calls"], start_wall, gap=poll / 2)
            out["describe_calls_per_poll"] = max(polls) if polls else 0
            out["polls"] = len(polls)
            out["submit_calls"] = sum(1 for op, _, _ in stats["calls"] if op == "SubmitJob")
            out["peak_rss_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
            tg.cancel_scope.cancel()

    anyio.run(main)
    deadline = time.monotonic() + 60
    while (left := fake.stats()["active"]) and time.monotonic() < deadline:
        time.sleep(0.5)
    out["jobs_left_after_cancel"] = left
    fake.stop()
    return out


class _CountingStore:
    """Serves ranged reads of one blob and counts the bytes read."""

    def __init__(self, data: bytes) -> None:
        self.data, self.read = data, 0

    def get_range(self, key: str, start: int, length: int) -> bytes:
        self.read += length
        return self.data[start : start + length]


def spec_bytes_per_child() -> None:
    """Bytes of task specs one array child reads: its own spec and 16 bytes of offset table (the
    whole array's specs before), for N = 100, 1,000, 10,000."""
    import msgpack

    from aflow.backends.launch import pack_specs, read_spec
    from aflow.engine.wire import TaskSpec

    print(f"{'spec bytes read per child':28}", end="")
    for n in (100, 1_000, 10_000):
        specs = [
            TaskSpec(
                "BenchFlow", "__main__", "flow.py", "1", "square", str(i), "s3", "s3://b/runs",
                parents=["1/start/0"], foreach_stack=[["start", "items", i, n]],
                decorators={"batch": {"cpu": 1, "memory": 4096}},
            ).pack()
            for i in range(n)
        ]  # fmt: skip
        store = _CountingStore(pack_specs(specs))
        read_spec(store, "specs", n - 1, n)  # type: ignore[arg-type]
        whole = len(msgpack.packb(specs, use_bin_type=True))
        print(f"  N={n}: {store.read} (whole list: {whole:,})", end="")
    print()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--width", type=int, default=10_000)
    parser.add_argument("--window", type=float, default=20.0)
    parser.add_argument("--poll", type=float, default=1.0)
    parser.add_argument("--side", type=int, help=argparse.SUPPRESS)  # one measurement, as JSON
    parser.add_argument("--moto", help=argparse.SUPPRESS)
    parser.add_argument(
        "--kubernetes", metavar="N[,N...]", help="only the Kubernetes end-to-end case, N-way"
    )
    parser.add_argument("--parallelism", type=int, default=50, help="Kubernetes pods at a time")
    parser.add_argument(
        "--batch", type=int, metavar="N", help="only the AWS Batch end-to-end case, 100- and N-way"
    )
    parser.add_argument("--batch-sleep", type=float, default=0.0, help=argparse.SUPPRESS)
    parser.add_argument("--batch-parallelism", type=int, default=6, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.kubernetes:  # its own module: benchmarks/k8s_bench.py
        from k8s_bench import run_case, widths_of

        run_case(widths_of(args.kubernetes), args.parallelism)
        return
    if args.batch:  # its own module: benchmarks/batch_bench.py
        import batch_bench

        batch_bench.run_case([100, args.batch], args.batch_parallelism, args.batch_sleep)
        return
    if args.side:
        print(json.dumps(measure(args.side, args.window, args.poll, args.moto)))
        return

    spec_bytes_per_child()
    bucket = f"bench-{uuid.uuid4().hex[:8]}"
    with moto_server(bucket) as endpoint:
        env = {
            **s3_datastore_env(endpoint, bucket),
            "AFLOW_LOGS_ENDPOINT_URL": endpoint,
            "AFLOW_BATCH_JOB_QUEUE": "aflow-test-queue",
            "AFLOW_TEST_COMPUTE": "batch",
        }
        results = []
        for width in (100, args.width):  # each scheduler in a fresh process: its own RSS
            side = [sys.executable, __file__, "--side", str(width), "--moto", endpoint]
            side += ["--window", str(args.window), "--poll", str(args.poll)]
            done = subprocess.run(side, env=env, capture_output=True, text=True, check=False)
            if done.returncode:
                sys.exit(f"width {width} failed:\n{done.stderr[-4000:]}")
            results.append(json.loads(done.stdout.strip().splitlines()[-1]))
    base, wide = results
    print(f"{'':28}{'N=' + str(base['width']):>12}{'N=' + str(wide['width']):>12}{'ratio':>8}")
    for key in (
        "submit_calls", "describe_calls_per_poll", "polls", "cpu_per_poll", "peak_rss_mb",
        "submit_seconds", "first_round_seconds", "jobs_left_after_cancel",
    ):  # fmt: skip
        ratio = wide[key] / base[key] if base[key] else float("nan")
        print(f"{key:28}{base[key]:>12.3g}{wide[key]:>12.3g}{ratio:>8.2f}")
    limit = math.ceil(wide["width"] / 100)
    print(
        f"\ntargets: one submission ({wide['submit_calls']:.0f}), <= {limit} DescribeJobs per poll "
        f"({wide['describe_calls_per_poll']:.0f}), RSS < 500 MB ({wide['peak_rss_mb']:.0f} MB), "
        f"no job left after cancel ({wide['jobs_left_after_cancel']:.0f})"
    )


if __name__ == "__main__":
    main()
