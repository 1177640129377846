"""Benchmark flow (c): an 80 MB numpy array handed from one step to the next."""

import numpy as np

from aflow import FlowSpec, step


class NumpyFlow(FlowSpec):
    @step
    def start(self) -> None:
        self.arr = np.arange(10_000_000, dtype=np.float64)  # 80 MB
        self.next(self.add_up)

    @step
    def add_up(self) -> None:
        self.total = float(self.arr.sum())
        self.next(self.end)

    @step
    def end(self) -> None:
        print(f"BENCH_RESULT total={int(self.total)}")


if __name__ == "__main__":
    NumpyFlow()
