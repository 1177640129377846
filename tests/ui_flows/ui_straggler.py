"""A foreach with a straggler, for the UI's running-task test: item 1 prints nothing and waits for a
file the test creates, so the test looks at a task that is running and silent."""

import os
import time

from aflow import FlowSpec, Parameter, step


class UIStragglerFlow(FlowSpec):
    gate = Parameter("gate", help="A file item 1 waits for")

    @step
    def start(self):
        self.items = ["a", "b", "c"]
        self.next(self.work, foreach="items")

    @step
    def work(self):
        if self.index == 1:
            deadline = time.monotonic() + 600  # a test that died leaves no task behind for long
            while not os.path.exists(self.gate):
                if time.monotonic() > deadline:
                    raise TimeoutError(f"{self.gate} never appeared")
                time.sleep(0.05)
        self.next(self.join)

    @step
    def join(self, inputs):
        self.next(self.end)

    @step
    def end(self):
        pass


if __name__ == "__main__":
    UIStragglerFlow()
