import numpy as np

from aflow import FlowSpec, Parameter, step


class BigFlow(FlowSpec):
    mb = Parameter("mb", default=150)

    @step
    def start(self):
        n = self.mb * 1024 * 1024 // 8
        self.big = np.arange(n, dtype=np.float64)
        self.blob = bytes(10 * 1024 * 1024)
        self.chunks = list(range(4))
        self.next(self.part, foreach="chunks")

    @step
    def part(self):
        k = len(self.big) // 4
        self.partial = float(self.big[self.input * k : (self.input + 1) * k].sum())
        self.next(self.join)

    @step
    def join(self, inputs):
        self.total = sum(i.partial for i in inputs)
        self.merge_artifacts(inputs, include=["big"])
        self.next(self.end)

    @step
    def end(self):
        n = len(self.big)
        self.expected = float(n * (n - 1) / 2)
        print("total", self.total, "expected", self.expected, "ok", self.total == self.expected)
        self.big2 = self.big * 2


if __name__ == "__main__":
    BigFlow()
