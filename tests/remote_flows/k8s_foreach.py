"""A foreach whose children run on @kubernetes (one Indexed Job), joined locally."""

import time

from aflow import FlowSpec, Parameter, kubernetes, step


class K8sForeachFlow(FlowSpec):
    width = Parameter("width", default=4)
    sleep = Parameter("sleep", default=0.0, help="seconds each child sleeps")

    @step
    def start(self):
        self.items = list(range(self.width))
        self.next(self.work, foreach="items")

    @kubernetes(memory=256)
    @step
    def work(self):
        print("child", self.input, flush=True)
        time.sleep(self.sleep)
        self.square = self.input * self.input
        self.next(self.join)

    @step
    def join(self, inputs):
        self.squares = [i.square for i in inputs]
        self.next(self.end)

    @step
    def end(self):
        print("sum", sum(self.squares))


if __name__ == "__main__":
    K8sForeachFlow()
