"""A remote step with @timeout: its time counts from when it starts, not from its submission."""

import time

from compute import remote

from aflow import FlowSpec, Parameter, step, timeout


class RemoteTimeoutFlow(FlowSpec):
    sleep = Parameter("sleep", default=0.0)

    @step
    def start(self):
        self.next(self.slow)

    @timeout(seconds=3)
    @remote()
    @step
    def slow(self):
        time.sleep(float(self.sleep))
        self.next(self.end)

    @step
    def end(self):
        pass


if __name__ == "__main__":
    RemoteTimeoutFlow()
