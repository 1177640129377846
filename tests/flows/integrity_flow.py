"""A small flow whose every artifact kind lands in the store: a blob over the inline limit, a
foreach's items, a join's inputs, and an inline value (tests/test_integrity.py, tests/test_chaos.py)."""

import time

from aflow import FlowSpec, Parameter, step


class IntegrityFlow(FlowSpec):
    width = Parameter("width", default=3, type=int)
    big = Parameter("big", default=0, type=int, help="bytes of an extra artifact (a full disk)")
    nap = Parameter("nap", default=0.0, type=float, help="seconds each work task sleeps")

    @step
    def start(self):
        self.payload = list(range(2000))  # a blob of its own (over the inline limit)
        self.items = [f"item-{i}" for i in range(self.width)]
        if self.big:
            self.blob = bytes(range(256)) * (self.big // 256)
        self.next(self.work, foreach="items")

    @step
    def work(self):
        if self.nap:
            time.sleep(self.nap)
        self.word = self.input.upper()
        self.part = sum(self.payload) + len(self.input)
        self.next(self.join)

    @step
    def join(self, inputs):
        self.words = sorted(i.word for i in inputs)
        self.total = sum(i.part for i in inputs)
        self.payload = inputs[0].payload
        self.next(self.end)

    @step
    def end(self):
        print("RESULT", self.total, ",".join(self.words), sum(self.payload))


if __name__ == "__main__":
    IntegrityFlow()
