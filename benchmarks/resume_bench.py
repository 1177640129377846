"""How long resuming takes when the origin run finished almost everything.

Runs a WIDTH-way foreach whose join fails (so WIDTH + 1 tasks are done), then `aflow resume`,
which must reuse every done task by reference and run only the join and end. Prints both wall
times and their ratio (the first run is the baseline measured in the same run).

    python benchmarks/resume_bench.py [--width 10000]
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

FLOW = Path(__file__).parent / "flows" / "resume_flow.py"


def timed(args: list[str], env: dict[str, str]) -> tuple[float, subprocess.CompletedProcess[str]]:
    started = time.perf_counter()
    done = subprocess.run(args, env=env, capture_output=True, text=True)
    return time.perf_counter() - started, done


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--width", type=int, default=10_000)
    width = parser.parse_args().width
    aflow = str(Path(sys.executable).with_name("aflow"))
    with tempfile.TemporaryDirectory() as tmp:
        env = dict(os.environ, AFLOW_DATASTORE_ROOT=f"{tmp}/store", BENCH_WIDTH=str(width))
        first, broken = timed([aflow, "run", str(FLOW), "-q"], {**env, "BENCH_BREAK": "1"})
        if broken.returncode == 0:
            sys.exit("the first run was meant to fail in its join")
        second, resumed = timed([aflow, "resume", str(FLOW), "-q"], env)
        if resumed.returncode != 0 or f"total={width * (width - 1)}" not in resumed.stdout:
            sys.exit(f"resume failed:\n{resumed.stdout}\n{resumed.stderr}")
    print(f"foreach width {width}: {width + 1} tasks done before the failure")
    print(f"first run (fails in the join): {first:7.2f} s")
    print(f"resume (reuses {width + 1} tasks): {second:7.2f} s   ({first / second:.1f}x faster)")


if __name__ == "__main__":
    main()
