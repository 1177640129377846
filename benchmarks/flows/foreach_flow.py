"""Benchmark flow (b): a wide foreach of trivial steps and a summing join.

The width comes from BENCH_FOREACH_WIDTH (default 1000) so that the file stays
identical between engines apart from its import line.
"""

import os
from typing import Any

from aflow import FlowSpec, step


class ForeachFlow(FlowSpec):
    @step
    def start(self) -> None:
        self.items = list(range(int(os.environ.get("BENCH_FOREACH_WIDTH", "1000"))))
        self.next(self.work, foreach="items")

    @step
    def work(self) -> None:
        self.y = self.input * 2
        self.next(self.join)

    @step
    def join(self, inputs: Any) -> None:
        self.total = sum(i.y for i in inputs)
        self.next(self.end)

    @step
    def end(self) -> None:
        print(f"BENCH_RESULT total={self.total}")


if __name__ == "__main__":
    ForeachFlow()
