"""A remote step that prints a line, then waits until the test has seen it: the step ends well only
if its line reached the scheduler while the step still ran."""

import os
import time

from compute import remote

from aflow import FlowSpec, Parameter, step


class RemoteTailFlow(FlowSpec):
    release = Parameter("release", default="")

    @step
    def start(self):
        self.next(self.wait)

    @remote()
    @step
    def wait(self):
        print("waiting for the scheduler to show this line", flush=True)
        deadline = time.monotonic() + 120
        while not os.path.exists(self.release):  # written by the test once it saw the line
            if time.monotonic() > deadline:
                raise RuntimeError("the line never reached the scheduler while the step ran")
            time.sleep(0.2)
        print("released")
        self.next(self.end)

    @step
    def end(self):
        pass


if __name__ == "__main__":
    RemoteTailFlow()
