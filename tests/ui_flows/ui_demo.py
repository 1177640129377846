"""The flow the UI tests read back: a static branch around a foreach, output on both streams,
artifacts of several kinds, a retried step, and (with --fail) an item that raises."""

import sys

import numpy as np

from aflow import FlowSpec, Parameter, retry, step


class UIDemoFlow(FlowSpec):
    """Squares a few numbers on one branch while the other audits the input."""

    width = Parameter("width", default=4, help="How many items to fan out over")
    fail = Parameter("fail", default=False, help="Make item 2 raise")

    @step
    def start(self):
        """Split: square the items on one side, audit them on the other."""
        self.items = list(range(self.width))
        self.matrix = np.arange(12, dtype=np.float32).reshape(3, 4)
        self.config = {"scale": 2, "name": "demo", "tags": ["a", "b"]}
        try:
            import pandas as pd
        except ImportError:  # previews of frames are tested where pandas is installed
            pass
        else:
            self.frame = pd.DataFrame({"item": self.items, "label": [f"n{i}" for i in self.items]})
        print("prepared", len(self.items), "items")
        self.next(self.prepare, self.audit)

    @step
    def prepare(self):
        self.next(self.work, foreach="items")

    @retry(times=1, minutes_between_retries=0)
    @step
    def work(self):
        """Square one item."""
        print(f"squaring item {self.input}")
        print(f"note: item {self.input} is fine", file=sys.stderr)
        if self.fail and self.input == 2:
            raise ValueError(f"item {self.input} is bad")
        self.square = self.input**2
        self.next(self.gather)

    @step
    def gather(self, inputs):
        self.squares = [i.square for i in inputs]
        self.next(self.merge)

    @step
    def audit(self):
        self.checked = len(self.items)
        self.next(self.merge)

    @step
    def merge(self, inputs):
        self.squares = inputs.gather.squares
        self.checked = inputs.audit.checked
        self.next(self.end)

    @step
    def end(self):
        print("total", sum(self.squares))


if __name__ == "__main__":
    UIDemoFlow()
