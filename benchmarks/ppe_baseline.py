"""Baseline for the foreach case: the same trivial calls on a bare ProcessPoolExecutor.

Run as a subprocess by core_bench.py (``python ppe_baseline.py WIDTH WORKERS``) so its
wall time includes interpreter and pool start-up, like an engine run does.
"""

import sys
from concurrent.futures import ProcessPoolExecutor


def work(x: int) -> int:
    return x * 2


def main() -> None:
    width, workers = int(sys.argv[1]), int(sys.argv[2])
    with ProcessPoolExecutor(max_workers=workers) as pool:
        total = sum(pool.map(work, range(width)))
    print(f"BENCH_RESULT total={total}")


if __name__ == "__main__":
    main()
