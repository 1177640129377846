"""Benchmark flow for resume: a wide foreach whose join fails on the first run (BENCH_BREAK=1)."""

import os

from aflow import FlowSpec, step


class ResumeBenchFlow(FlowSpec):
    @step
    def start(self) -> None:
        self.items = list(range(int(os.environ.get("BENCH_WIDTH", "10000"))))
        self.next(self.work, foreach="items")

    @step
    def work(self) -> None:
        self.y = self.input * 2
        self.next(self.join)

    @step
    def join(self, inputs) -> None:
        if os.environ.get("BENCH_BREAK") == "1":
            raise RuntimeError("the join fails on purpose")
        self.total = sum(i.y for i in inputs)
        self.next(self.end)

    @step
    def end(self) -> None:
        print(f"BENCH_RESULT total={self.total}")
