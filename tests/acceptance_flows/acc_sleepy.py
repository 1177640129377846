import time

from aflow import FlowSpec, Parameter, step


class Sleepy(FlowSpec):
    n = Parameter("n", default=40)
    secs = Parameter("secs", default=30.0)

    @step
    def start(self):
        self.items = list(range(self.n))
        self.next(self.nap, foreach="items")

    @step
    def nap(self):
        print("napping", self.input, flush=True)
        self.payload = bytes(1024 * 1024) * 5
        time.sleep(self.secs)
        self.next(self.join)

    @step
    def join(self, inputs):
        self.next(self.end)

    @step
    def end(self):
        pass


if __name__ == "__main__":
    Sleepy()
