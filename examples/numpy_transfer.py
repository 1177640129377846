"""A numpy array of a million elements made in one step and summed in a later one."""

import numpy as np

from aflow import FlowSpec, step


class NumpyTransferFlow(FlowSpec):
    @step
    def start(self):
        self.array = np.arange(1_000_000, dtype=np.float64)
        self.next(self.total)

    @step
    def total(self):
        self.sum = float(self.array.sum())
        self.next(self.end)

    @step
    def end(self):
        print(f"sum = {self.sum:.0f}")


if __name__ == "__main__":
    NumpyTransferFlow()
