"""A flow whose foreach branch raises: the run must fail with the user's traceback."""

import time

from aflow import FlowSpec, step


class FailingFlow(FlowSpec):
    @step
    def start(self):
        self.items = list(range(6))
        self.next(self.work, foreach="items")

    @step
    def work(self):
        if self.input == 3:
            raise ValueError(f"item {self.input} is bad")
        time.sleep(30)
        self.next(self.join)

    @step
    def join(self, inputs):
        self.next(self.end)

    @step
    def end(self):
        pass
