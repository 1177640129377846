"""A flow that is still running for a couple of seconds: for `aflow logs --follow`."""

import time

from aflow import FlowSpec, step


class InspectSlowFlow(FlowSpec):
    @step
    def start(self):
        self.items = [0.5, 2.0]
        self.next(self.nap, foreach="items")

    @step
    def nap(self):
        time.sleep(self.input)
        print(f"napped {self.input}")
        self.next(self.join)

    @step
    def join(self, inputs):
        self.next(self.end)

    @step
    def end(self):
        pass


if __name__ == "__main__":
    InspectSlowFlow()
