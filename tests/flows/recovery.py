"""Flows for retry, catch, timeout, environment and resume (used by test_recovery.py)."""

import os
import signal
import time

from aflow import FlowSpec, Parameter, catch, current, environment, retry, step, timeout


class FlakyFlow(FlowSpec):
    @step
    def start(self):
        self.items = [0, 1, 2]
        self.next(self.work, foreach="items")

    @retry(times=3, minutes_between_retries=0)
    @step
    def work(self):
        if self.input == 1 and current.retry_count < 2:
            raise RuntimeError(f"flaky attempt {current.retry_count}")
        self.value = (self.input, current.retry_count)
        self.next(self.join)

    @step
    def join(self, inputs):
        self.values = sorted(i.value for i in inputs)
        self.next(self.end)

    @step
    def end(self):
        pass


class PlatformOnlyFlow(FlowSpec):
    mode = Parameter("mode", default="user")

    @retry(times=2, minutes_between_retries=0, only_platform_errors=True)
    @step
    def start(self):
        if current.retry_count == 0:
            if self.mode == "kill":
                os.kill(os.getpid(), signal.SIGKILL)  # as if evicted
            raise ValueError("my own bug")
        self.attempts = current.retry_count + 1
        self.next(self.end)

    @step
    def end(self):
        pass


class CatchFlow(FlowSpec):
    @step
    def start(self):
        self.items = [1, 0, 4]
        self.next(self.divide, foreach="items")

    @catch(var="problem", print_exception=False)
    @step
    def divide(self):
        self.problem = None
        self.result = 12 // self.input
        self.next(self.join)

    @step
    def join(self, inputs):
        self.results = [getattr(i, "result", None) for i in inputs]
        self.problems = [str(i.problem) if i.problem else None for i in inputs]
        self.next(self.end)

    @step
    def end(self):
        pass


class TimeoutFlow(FlowSpec):
    @retry(times=1, minutes_between_retries=0)
    @timeout(seconds=1)
    @step
    def start(self):
        if current.retry_count == 0:
            time.sleep(30)
        self.finished_on = current.retry_count
        self.next(self.end)

    @environment(vars={"AFLOW_TEST_GREETING": "hello"})
    @step
    def end(self):
        self.greeting = os.environ.get("AFLOW_TEST_GREETING")


class PlainFlow(FlowSpec):
    """No decorators of its own: --with adds them."""

    @step
    def start(self):
        if current.retry_count == 0:
            raise RuntimeError("first try fails")
        self.tags = current.tags
        self.next(self.end)

    @step
    def end(self):
        pass


class IncludeFlow(FlowSpec):
    from aflow import IncludeFile

    table = IncludeFile("table", default="missing.csv", help="a CSV file")
    raw = IncludeFile("raw", is_text=False, required=False)

    @step
    def start(self):
        self.rows = [line.split(",") for line in self.table.splitlines()]
        self.raw_size = len(self.raw) if self.raw is not None else None
        self.next(self.end)

    @step
    def end(self):
        pass


class SlowUploadFlow(FlowSpec):
    """A large artifact whose upload outlasts the step's timeout."""

    @catch(var="upload_failure", print_exception=False)
    @timeout(seconds=1.5)
    @step
    def start(self):
        import numpy as np

        self.big = np.ones(30_000_000)  # 240 MB: many small parts, one at a time
        self.next(self.end)

    @step
    def end(self):
        pass


class SlowRetryFlow(FlowSpec):
    @retry(times=1)  # a local step retries at once
    @step
    def start(self):
        if current.retry_count == 0:
            raise RuntimeError("first attempt fails")
        gate = os.environ["AFLOW_TEST_GATE"]  # the second attempt runs until the test opens it
        deadline = time.monotonic() + 120
        while not os.path.exists(gate) and time.monotonic() < deadline:
            time.sleep(0.02)
        self.next(self.end)

    @step
    def end(self):
        pass
