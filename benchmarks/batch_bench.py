"""The AWS Batch end-to-end case of remote_bench.py: a foreach whose children all run to completion
on the Batch emulator (tests/fakes/batch_server.py, in a process of its own, its containers local
processes running the real bootstrap) with an S3 datastore on moto, reached through a counting proxy
(in the emulator's process) so that every byte read from the store, by the scheduler and by the
containers, is counted. This process is the scheduler; it prints per task the Batch and CloudWatch
Logs calls by kind, the store GETs and bytes read (all, and the output objects the live tail and
the end of each task read), and its own CPU seconds.

    python benchmarks/remote_bench.py --batch 1000      (or: python benchmarks/batch_bench.py 1000)
"""

from __future__ import annotations

import collections
import json
import os
import resource
import subprocess
import sys
import time
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
FLOWS = ROOT / "tests" / "remote_flows"

_FAKE = """
import asyncio, collections, json, sys, threading
sys.path.insert(0, {tests!r})
from aiohttp import ClientSession, web
from fakes.batch_server import FakeBatch

counts = collections.Counter()
store = {moto!r}

async def forward(request):
    body = await request.read()
    headers = {{k: v for k, v in request.headers.items() if k.lower() not in ("host", "content-length")}}
    async with app["session"].request(
        request.method, store + request.path_qs, headers=headers, data=body or None
    ) as answer:
        data = await answer.read()
        kind = "output" if request.path.endswith(".out") else "other"
        listing = any(q in request.query for q in ("list-type", "prefix", "delimiter", "uploads"))
        if request.method == "GET" and not listing:  # an object read (presigned ones too)
            counts[f"gets {{kind}}"] += 1
            counts[f"bytes {{kind}}"] += len(data)
        elif request.method == "PUT" and "uploadId" not in request.query:
            counts[f"puts {{kind}}"] += 1
        out = {{k: v for k, v in answer.headers.items()
               if k.lower() not in ("content-length", "transfer-encoding", "content-encoding",
                                    "connection")}}
        return web.Response(status=answer.status, body=data, headers=out)

async def serve(ready):
    global app
    app = web.Application(client_max_size=1 << 30)
    app["session"] = ClientSession()
    app.router.add_route("*", "/{{tail:.*}}", forward)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    ready.append(site._server.sockets[0].getsockname()[1])
    await asyncio.Event().wait()

ready = []
threading.Thread(target=lambda: asyncio.run(serve(ready)), daemon=True).start()
while not ready:
    threading.Event().wait(0.05)
proxy = f"http://127.0.0.1:{{ready[0]}}"
fake = FakeBatch(logs_endpoint=store, parallelism={parallelism})
fake.base_env.update({env!r})
fake.base_env["AFLOW_S3_ENDPOINT_URL"] = proxy
fake.start()
print(json.dumps({{"url": fake.url, "logs_url": fake.logs_url, "proxy": proxy}}), flush=True)
for line in sys.stdin:
    if line.strip() == "stats":
        calls = collections.Counter(r.operation for r in list(fake.requests))
        calls.update({{f"logs {{k}}": v for k, v in fake.logs_calls.items()}})
        print(json.dumps({{"calls": dict(calls), "store": dict(counts),
                          "peak_running": fake.peak_running}}), flush=True)
    else:
        break
fake.stop()
"""


def measure(width: int, parallelism: int, sleep: float) -> dict:
    """One run of the foreach in this process (the scheduler); the emulator's and proxy's counts."""
    import anyio

    from aflow import run_flow
    from aflow.backends import saved_output
    from aflow.engine.flow_loader import load_flow_file

    tails: list[saved_output.LiveTail] = []
    made = saved_output.LiveTail.__init__

    def keep(self: saved_output.LiveTail, *args: object, **kwargs: object) -> None:
        made(self, *args, **kwargs)  # type: ignore[arg-type]
        tails.append(self)

    saved_output.LiveTail.__init__ = keep  # type: ignore[method-assign]
    container_env = {
        k: os.environ[k] for k in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_DEFAULT_REGION")
    }
    code = _FAKE.format(
        tests=str(ROOT / "tests"),
        moto=os.environ["AFLOW_S3_ENDPOINT_URL"],
        parallelism=parallelism,
        env=container_env,
    )
    fake = subprocess.Popen(
        [sys.executable, "-c", code], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
    )
    assert fake.stdout and fake.stdin
    urls = json.loads(fake.stdout.readline())
    os.environ.update(
        AFLOW_BATCH_ENDPOINT_URL=urls["url"],
        AFLOW_LOGS_ENDPOINT_URL=urls["logs_url"],
        AFLOW_S3_ENDPOINT_URL=urls["proxy"],  # the scheduler's reads are counted too
    )
    flow_cls = load_flow_file(str(FLOWS / "remote_foreach.py"))
    usage = resource.getrusage(resource.RUSAGE_SELF)
    cpu0, wall0 = usage.ru_utime + usage.ru_stime, time.monotonic()
    run = anyio.run(lambda: run_flow(flow_cls, {"width": width, "sleep": sleep}))
    usage = resource.getrusage(resource.RUSAGE_SELF)
    out: dict = {
        "width": width,
        "successful": run.successful,
        "wall_seconds": time.monotonic() - wall0,
        "scheduler_cpu_seconds": usage.ru_utime + usage.ru_stime - cpu0,
        "live_tail_gets": sum(t.counts.live_gets for t in tails),
        "end_gets": sum(t.counts.last_gets for t in tails),
    }
    fake.stdin.write("stats\n")
    fake.stdin.flush()
    stats = json.loads(fake.stdout.readline())
    out["calls"], out["store"] = stats["calls"], stats["store"]
    out["peak_running"] = stats["peak_running"]
    fake.stdin.write("stop\n")
    fake.stdin.flush()
    try:  # its stop removes every container's folder: slow on a loaded machine, not measured
        fake.wait(timeout=300)
    except subprocess.TimeoutExpired:
        fake.kill()
    return out


KINDS = ("SubmitJob", "DescribeJobs", "RegisterJobDefinition", "DescribeJobQueues",
         "logs GetLogEvents")  # fmt: skip


def per_task(result: dict) -> dict[str, float]:
    n = result["width"]
    calls = collections.Counter(result["calls"])
    store = collections.Counter(result["store"])
    return {
        **{f"{kind} calls": calls[kind] / n for kind in KINDS},
        "store GETs (all)": (store["gets output"] + store["gets other"]) / n,
        "store bytes read (all)": (store["bytes output"] + store["bytes other"]) / n,
        "output GETs": store["gets output"] / n,
        "output bytes read": store["bytes output"] / n,
        "live-tail GETs": result["live_tail_gets"] / n,
        "output PUTs (containers)": store["puts output"] / n,
        "scheduler CPU ms": 1000 * result["scheduler_cpu_seconds"] / n,
    }


def report(results: list[dict]) -> None:
    for r in results:
        print(
            f"AWS Batch end to end: a {r['width']}-way foreach, every child run to completion "
            f"({'succeeded' if r['successful'] else 'FAILED'}, {r['wall_seconds']:.1f} s wall, "
            f"at most {r['peak_running']} running at once; live tail {r['live_tail_gets']} GETs "
            f"= {r['live_tail_gets'] / r['wall_seconds']:.2f}/s)"
        )
    rows = [per_task(r) for r in results]
    head = "".join(f"{'N=' + str(r['width']):>14}" for r in results)
    print(f"{'per task':28}{head}{'ratio':>8}")
    for key in rows[0]:
        values = "".join(f"{row[key]:>14.4g}" for row in rows)
        ratio = rows[-1][key] / rows[0][key] if rows[0][key] else float("nan")
        print(f"{key:28}{values}{ratio:>8.2f}")


def run_case(widths: list[int], parallelism: int = 6, sleep: float = 0.0) -> list[dict]:
    """Moto in a process, the scheduler in another (its own CPU), the emulator and the proxy in a
    third; each width in a fresh scheduler process."""
    from moto_server import moto_server, s3_datastore_env

    results = []
    for width in widths:
        bucket = f"bench-{uuid.uuid4().hex[:8]}"
        with moto_server(bucket) as endpoint:
            env = {
                **s3_datastore_env(endpoint, bucket),
                "AFLOW_BATCH_JOB_QUEUE": "aflow-test-queue",
                "AFLOW_BATCH_IAM_ROLE": "arn:aws:iam::123456789012:role/aflow-task",
                "AFLOW_TEST_COMPUTE": "batch",
            }
            side = [sys.executable, __file__, "--side", str(width), str(parallelism), str(sleep)]
            done = subprocess.run(side, env=env, capture_output=True, text=True, check=False)
            if done.returncode:
                sys.exit(f"batch width {width} failed:\n{done.stderr[-4000:]}")
            results.append(json.loads(done.stdout.strip().splitlines()[-1]))
            print(json.dumps(results[-1]), file=sys.stderr, flush=True)
    report(results)
    return results


if __name__ == "__main__":
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    if sys.argv[1:2] == ["--side"]:
        width, parallelism, sleep = int(sys.argv[2]), int(sys.argv[3]), float(sys.argv[4])
        print(json.dumps(measure(width, parallelism, sleep)))
    else:
        run_case([100, int(sys.argv[1]) if len(sys.argv) > 1 else 1000])
