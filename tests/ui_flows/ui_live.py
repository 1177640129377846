"""A run that takes a few seconds, for the UI's live tests: started while a page is open, it must
appear and progress there without a reload."""

import time

from aflow import FlowSpec, Parameter, step


class UILiveFlow(FlowSpec):
    nap = Parameter("nap", default=1.5, help="Seconds each task sleeps")

    @step
    def start(self):
        self.items = [1, 2, 3]
        time.sleep(self.nap)
        self.next(self.work, foreach="items")

    @step
    def work(self):
        print(f"working on {self.input}", flush=True)
        time.sleep(self.nap)
        print(f"finished {self.input}", flush=True)
        self.next(self.join)

    @step
    def join(self, inputs):
        self.next(self.end)

    @step
    def end(self):
        time.sleep(self.nap / 2)


if __name__ == "__main__":
    UILiveFlow()
