"""The Kubernetes end-to-end case of remote_bench.py: a foreach whose children all run to completion
on the Kubernetes API emulator (tests/fakes/k8s_server.py, in a process of its own, its pods local
processes running the real bootstrap) with an S3 datastore on moto. The pods reach the datastore
through a counting proxy (benchmarks/store_proxy.py, in the emulator's process); the scheduler does
not. This process is the scheduler. For each width it prints per task: the Kubernetes requests by
kind, the bytes the children read from the store (ranged GETs: each child's own spec and foreach
item; whole GETs: the blobs and records it loads), and the scheduler's CPU; then, for two widths or
more, each figure's ratio to the first width's (targets: requests and bytes per child flat, CPU per
task flat). Children run `--parallelism` at a time (the Indexed Job's parallelism).

    python benchmarks/remote_bench.py --kubernetes 100,1000 [--parallelism 50]
    (or: python benchmarks/k8s_bench.py 100,1000 [PARALLELISM])
"""

from __future__ import annotations

import collections
import json
import os
import re
import resource
import subprocess
import sys
import time
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
FLOWS = ROOT / "tests" / "remote_flows"

_FAKE = """
import dataclasses, json, sys
sys.path.insert(0, {tests!r})
sys.path.insert(0, {benchmarks!r})
from fakes.k8s_server import FakeK8s
from store_proxy import StoreProxy
proxy = StoreProxy({s3!r})
fake = FakeK8s()
fake.pod_env.update({env!r})
fake.pod_env_override["AFLOW_S3_ENDPOINT_URL"] = proxy.url
fake.start()
print(json.dumps({{"url": fake.url}}), flush=True)
for line in sys.stdin:
    if line.strip() == "stats":
        calls = [(r.method, r.path, r.watch) for r in list(fake.requests)]
        store = dataclasses.asdict(proxy.counts)
        print(json.dumps({{"calls": calls, "pods": len(fake.pods()), "store": store}}), flush=True)
    else:
        break
fake.stop()
"""


def kind_of(method: str, path: str, watch: bool) -> str:
    """A request's kind: 'POST jobs', 'WATCH pods', 'GET pods/log', ..."""
    if path.startswith("/version"):
        return "GET version"
    tail = re.sub(r"^/apis?/(batch/)?v1/(namespaces/[^/]+/)?", "", path)
    parts = tail.split("/")
    resource_ = parts[0] + (f"/{parts[2]}" if len(parts) > 2 else "")
    verb = "WATCH" if watch else ("LIST" if method == "GET" and len(parts) == 1 else method)
    return f"{verb} {resource_}"


def measure(width: int, parallelism: int) -> dict:
    """One run of the foreach in this process (the scheduler); the emulator's request counts."""
    import anyio

    from aflow import run_flow
    from aflow.engine.flow_loader import load_flow_file

    pod_env = {
        k: os.environ[k] for k in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_DEFAULT_REGION")
    }
    code = _FAKE.format(
        tests=str(ROOT / "tests"),
        benchmarks=str(ROOT / "benchmarks"),
        s3=os.environ["AFLOW_S3_ENDPOINT_URL"],
        env=pod_env,
    )
    fake = subprocess.Popen(
        [sys.executable, "-c", code], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
    )
    assert fake.stdout and fake.stdin
    os.environ["AFLOW_KUBERNETES_HOST"] = json.loads(fake.stdout.readline())["url"]
    flow_cls = load_flow_file(str(FLOWS / "k8s_foreach.py"))
    usage = resource.getrusage(resource.RUSAGE_SELF)
    cpu0, wall0 = usage.ru_utime + usage.ru_stime, time.monotonic()
    run = anyio.run(lambda: run_flow(flow_cls, {"width": width}, max_workers=parallelism))
    usage = resource.getrusage(resource.RUSAGE_SELF)
    out: dict = {
        "width": width,
        "successful": run.successful,
        "wall_seconds": time.monotonic() - wall0,
        "scheduler_cpu_seconds": usage.ru_utime + usage.ru_stime - cpu0,
    }
    fake.stdin.write("stats\n")
    fake.stdin.flush()
    stats = json.loads(fake.stdout.readline())
    out["requests"] = dict(collections.Counter(kind_of(*c) for c in stats["calls"]))
    out["store"] = stats["store"]
    fake.stdin.write("stop\n")
    fake.stdin.flush()
    try:  # its stop removes every pod's folder: slow on a loaded machine, and not measured
        fake.wait(timeout=300)
    except subprocess.TimeoutExpired:
        fake.kill()
    return out


def per_task(result: dict) -> dict[str, float]:
    """The figures of one width, per task (per child for the store)."""
    n, store = result["width"], result["store"]
    out = {
        "k8s requests": sum(result["requests"].values()) / n,
        "store GETs per child": store["gets"] / n,
        "store bytes read per child": store["bytes_read"] / n,
        "  of which ranged (own spec + item)": store["by_kind"].get("ranged", 0) / n,
        "  of which whole objects": store["by_kind"].get("whole", 0) / n,
        "store bytes written per child": store["bytes_written"] / n,
        "scheduler CPU ms per task": 1000 * result["scheduler_cpu_seconds"] / n,
        "wall seconds": result["wall_seconds"],
    }
    for kind, count in result["requests"].items():
        out[f"  {kind}"] = count / n
    return out


def report(results: list[dict]) -> None:
    for result in results:
        n = result["width"]
        state = "succeeded" if result["successful"] else "FAILED"
        print(
            f"Kubernetes end to end: a {n}-way foreach, every child run to completion ({state}, "
            f"{result['wall_seconds']:.1f} s, {result['parallelism']} at a time)"
        )
    rows = [per_task(r) for r in results]
    keys = list(rows[0]) + sorted({k for r in rows[1:] for k in r} - set(rows[0]))
    head = f"{'per task':40}" + "".join(f"{'N=' + str(r['width']):>12}" for r in results)
    if len(results) > 1:
        head += "".join(f"{'ratio ' + str(r['width']):>14}" for r in results[1:])
    print(head)
    for key in keys:
        values = [row.get(key, 0.0) for row in rows]
        line = f"{key:40}" + "".join(f"{v:>12.4g}" for v in values)
        for v in values[1:]:
            line += f"{(v / values[0] if values[0] else float('nan')):>14.2f}"
        print(line)
    print(
        "(the bootstrap and the code package come through presigned URLs, not counted here; "
        "ratios are to the first width)"
    )


def run_case(widths: list[int], parallelism: int = 50) -> list[dict]:
    """Moto in a process, the scheduler in another (its own CPU), the emulator in a third."""
    from moto_server import moto_server, s3_datastore_env

    results = []
    for width in widths:
        bucket = f"bench-{uuid.uuid4().hex[:8]}"
        with moto_server(bucket) as endpoint:
            env = s3_datastore_env(endpoint, bucket)
            side = [sys.executable, __file__, "--side", str(width), str(parallelism)]
            done = subprocess.run(side, env=env, capture_output=True, text=True, check=False)
            if done.returncode:
                sys.exit(f"kubernetes width {width} failed:\n{done.stderr[-4000:]}")
            result = json.loads(done.stdout.strip().splitlines()[-1])
        result["parallelism"] = parallelism
        results.append(result)
    report(results)
    return results


def widths_of(text: str) -> list[int]:
    return [int(w) for w in text.split(",") if w.strip()]


if __name__ == "__main__":
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    if sys.argv[1:2] == ["--side"]:
        print(json.dumps(measure(int(sys.argv[2]), int(sys.argv[3]))))
    else:
        parallelism = int(sys.argv[2]) if len(sys.argv) > 2 else 50
        run_case(widths_of(sys.argv[1]) if len(sys.argv) > 1 else [100], parallelism)
