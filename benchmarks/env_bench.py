"""What a cached @pypi environment costs a task: the same flow with and without @pypi, second runs.

A 6-step linear flow whose every step imports `six`: once plain (the scheduler's own six, tasks
forked from the warm parent), once with `@pypi(packages={"six": "1.16.0"})` on every step (each task
a fresh interpreter of the cached environment). The environment is made by a first run that is not
timed; then both flows run `--rounds` times alternately and the best times are compared.

    python benchmarks/env_bench.py [--rounds 3]

Target (step environments issue): < 1 s added per task once the environment is cached.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

STEPS = 6


def flow_source(with_env: bool) -> str:
    deco = '    @pypi(packages={"six": "1.16.0"})\n' if with_env else ""
    names = [f"s{i}" for i in range(STEPS - 2)]
    chain = ["start", *names, "end"]
    body = ["from aflow import FlowSpec, pypi, step\n", "class EnvBenchFlow(FlowSpec):"]
    for i, name in enumerate(chain):
        body.append(f"{deco}    @step\n    def {name}(self):")
        body.append("        import six\n        self.v = six.__version__")
        if name != "end":
            body.append(f"        self.next(self.{chain[i + 1]})")
    body.append('\nif __name__ == "__main__":\n    EnvBenchFlow()\n')
    return "\n".join(body)


def timed_run(flow: Path, store: str) -> float:
    started = time.perf_counter()
    subprocess.run(
        [sys.executable, str(flow), "run", "--datastore-root", store, "--quiet"],
        check=True,
        capture_output=True,
    )
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        os.environ["AFLOW_ENV_CACHE"] = str(Path(tmp) / "envs")
        flows = {}
        for kind in ("plain", "pypi"):
            folder = Path(tmp) / kind
            folder.mkdir()
            flows[kind] = folder / "flow.py"
            flows[kind].write_text(flow_source(kind == "pypi"))
        store = str(Path(tmp) / "store")
        first = timed_run(flows["pypi"], store)  # makes the environment
        times: dict[str, list[float]] = {"plain": [], "pypi": []}
        for _ in range(args.rounds):
            for kind in ("plain", "pypi"):
                times[kind].append(timed_run(flows[kind], store))
    plain, env = min(times["plain"]), min(times["pypi"])
    print(f"first @pypi run (makes the environment): {first:.2f} s")
    print(f"{STEPS}-step flow, best of {args.rounds}: plain {plain:.2f} s, @pypi cached {env:.2f} s")
    print(f"added per task: {(env - plain) / STEPS:.3f} s (target < 1 s); ratio {env / plain:.2f}x")


if __name__ == "__main__":
    main()
