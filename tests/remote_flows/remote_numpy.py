"""A numpy array made locally and summed in a remote step."""

import numpy as np
from compute import remote

from aflow import FlowSpec, step


class RemoteNumpyFlow(FlowSpec):
    @step
    def start(self):
        self.array = np.arange(1_000_000, dtype=np.float64)
        self.next(self.total)

    @remote()
    @step
    def total(self):
        self.sum = float(self.array.sum())
        self.next(self.end)

    @step
    def end(self):
        assert self.sum == 499999500000.0, self.sum


if __name__ == "__main__":
    RemoteNumpyFlow()
