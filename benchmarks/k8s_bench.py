"""The Kubernetes end-to-end case of remote_bench.py: a foreach whose children all run to completion
on the Kubernetes API emulator (tests/fakes/k8s_server.py, in a process of its own, its pods local
processes running the real bootstrap) with an S3 datastore on moto. This process is the scheduler;
it prints per task the Kubernetes requests by kind and its own CPU seconds, and the wall time.

    python benchmarks/remote_bench.py --kubernetes 100      (or: python benchmarks/k8s_bench.py 100)
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
import json, sys
sys.path.insert(0, {tests!r})
from fakes.k8s_server import FakeK8s
fake = FakeK8s()
fake.pod_env.update({env!r})
fake.start()
print(json.dumps({{"url": fake.url}}), flush=True)
for line in sys.stdin:
    if line.strip() == "stats":
        calls = [(r.method, r.path, r.watch) for r in list(fake.requests)]
        print(json.dumps({{"calls": calls, "pods": len(fake.pods())}}), flush=True)
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


def measure(width: int) -> dict:
    """One run of the foreach in this process (the scheduler); the emulator's request counts."""
    import anyio

    from aflow import run_flow
    from aflow.engine.flow_loader import load_flow_file

    pod_env = {
        k: os.environ[k] for k in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_DEFAULT_REGION")
    }
    code = _FAKE.format(tests=str(ROOT / "tests"), env=pod_env)
    fake = subprocess.Popen(
        [sys.executable, "-c", code], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
    )
    assert fake.stdout and fake.stdin
    os.environ["AFLOW_KUBERNETES_HOST"] = json.loads(fake.stdout.readline())["url"]
    flow_cls = load_flow_file(str(FLOWS / "k8s_foreach.py"))
    usage = resource.getrusage(resource.RUSAGE_SELF)
    cpu0, wall0 = usage.ru_utime + usage.ru_stime, time.monotonic()
    run = anyio.run(lambda: run_flow(flow_cls, {"width": width}, max_workers=width))
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
    fake.stdin.write("stop\n")
    fake.stdin.flush()
    try:  # its stop removes every pod's folder: slow on a loaded machine, and not measured
        fake.wait(timeout=300)
    except subprocess.TimeoutExpired:
        fake.kill()
    return out


def report(result: dict) -> None:
    n = result["width"]
    print(
        f"Kubernetes end to end: a {n}-way foreach, every child run to completion "
        f"({'succeeded' if result['successful'] else 'FAILED'}, {result['wall_seconds']:.1f} s)"
    )
    print(
        f"  scheduler CPU: {result['scheduler_cpu_seconds']:.2f} s, "
        f"{1000 * result['scheduler_cpu_seconds'] / n:.1f} ms per task"
    )
    total = sum(result["requests"].values())
    print(f"  Kubernetes requests: {total} ({total / n:.2f} per task), by kind (per task):")
    for kind, count in sorted(result["requests"].items(), key=lambda kv: -kv[1]):
        print(f"    {kind:24}{count:>8}{count / n:>10.3f}")


def run_case(width: int) -> dict:
    """Moto in a process, the scheduler in another (its own CPU), the emulator in a third."""
    from moto_server import moto_server

    bucket = f"bench-{uuid.uuid4().hex[:8]}"
    with moto_server(bucket) as endpoint:
        env = {
            **os.environ,
            "AWS_ACCESS_KEY_ID": "testing",
            "AWS_SECRET_ACCESS_KEY": "testing",
            "AWS_DEFAULT_REGION": "us-east-1",
            "AFLOW_S3_ENDPOINT_URL": endpoint,
            "AFLOW_DEFAULT_DATASTORE": "s3",
            "AFLOW_DATASTORE_SYSROOT_S3": f"s3://{bucket}/runs",
        }
        side = [sys.executable, __file__, "--side", str(width)]
        done = subprocess.run(side, env=env, capture_output=True, text=True, check=False)
        if done.returncode:
            sys.exit(f"kubernetes width {width} failed:\n{done.stderr[-4000:]}")
        result = json.loads(done.stdout.strip().splitlines()[-1])
    report(result)
    return result


if __name__ == "__main__":
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    if sys.argv[1:2] == ["--side"]:
        print(json.dumps(measure(int(sys.argv[2]))))
    else:
        run_case(int(sys.argv[1]) if len(sys.argv) > 1 else 100)
