"""A wide foreach whose children run remotely, joined locally."""

from compute import remote

from aflow import FlowSpec, Parameter, step


class RemoteForeachFlow(FlowSpec):
    width = Parameter("width", default=100)
    sleep = Parameter("sleep", default=0.0)

    @step
    def start(self):
        self.items = list(range(int(self.width)))
        self.next(self.square, foreach="items")

    @remote()
    @step
    def square(self):
        import time

        time.sleep(float(self.sleep))
        self.value = self.input * self.input
        print(f"item {self.input} squared is {self.value}")
        self.next(self.join)

    @step
    def join(self, inputs):
        self.total = sum(i.value for i in inputs)
        self.next(self.end)

    @step
    def end(self):
        n = int(self.width)
        assert self.total == sum(i * i for i in range(n)), self.total


if __name__ == "__main__":
    RemoteForeachFlow()
