"""Small flows, one behaviour each, used by test_run.py through run_flow()."""

import asyncio
import os
import time

from aflow import FlowSpec, Parameter, current, step


class AsyncStepFlow(FlowSpec):
    @step
    async def start(self):
        await asyncio.sleep(0.01)
        self.loop_ran = True
        self.next(self.end)

    @step
    def end(self):
        self.seen = self.loop_ran


class ConcurrencyFlow(FlowSpec):
    width = Parameter("width", default=6)
    nap = Parameter("nap", default=0.3)

    @step
    def start(self):
        self.items = list(range(self.width))
        self.next(self.work, foreach="items")

    @step
    def work(self):
        self.began = time.time()
        time.sleep(self.nap)
        self.ended = time.time()
        self.pid = os.getpid()
        self.next(self.join)

    @step
    def join(self, inputs):
        self.spans = [(i.began, i.ended) for i in inputs]
        self.pids = {i.pid for i in inputs}
        self.indexes = [i.index for i in inputs]
        self.next(self.end)

    @step
    def end(self):
        pass


class SleepyFlow(FlowSpec):
    @step
    def start(self):
        self.items = list(range(4))
        self.next(self.nap, foreach="items")

    @step
    def nap(self):
        print(f"napping {os.getpid()}", flush=True)
        time.sleep(60)
        self.next(self.join)

    @step
    def join(self, inputs):
        self.next(self.end)

    @step
    def end(self):
        pass


class ConflictFlow(FlowSpec):
    @step
    def start(self):
        self.next(self.a, self.b)

    @step
    def a(self):
        self.x = 1
        self.same = "yes"
        self.next(self.join)

    @step
    def b(self):
        self.x = 2
        self.same = "yes"
        self.next(self.join)

    @step
    def join(self, inputs):
        self.merge_artifacts(inputs)
        self.next(self.end)

    @step
    def end(self):
        pass


class NotIterableFlow(FlowSpec):
    @step
    def start(self):
        self.items = 5
        self.next(self.work, foreach="items")

    @step
    def work(self):
        self.next(self.join)

    @step
    def join(self, inputs):
        self.next(self.end)

    @step
    def end(self):
        pass


class RequiredParamFlow(FlowSpec):
    alpha = Parameter("alpha", type=float, required=True)
    tags = Parameter("tags", default=["x"])

    @step
    def start(self):
        self.doubled = self.alpha * 2
        self.next(self.end)

    @step
    def end(self):
        self.ctx = (current.flow_name, current.step_name, current.retry_count)


class ChattyFlow(FlowSpec):
    @step
    def start(self):
        import sys

        for i in range(3):
            print(f"line {i}")
        print("to stderr", file=sys.stderr)
        print("no newline at the end", end="")
        self.next(self.end)

    @step
    def end(self):
        pass


class ReassignParamFlow(FlowSpec):
    alpha = Parameter("alpha", default=1)

    @step
    def start(self):
        self.alpha = 2
        self.next(self.end)

    @step
    def end(self):
        pass


class InPlaceFlow(FlowSpec):
    """A large array read by two steps: one leaves it alone, one changes it in place."""

    @step
    def start(self):
        import numpy as np

        self.big = np.zeros(500_000)
        self.next(self.reader)

    @step
    def reader(self):
        self.total_before = float(self.big.sum())
        self.next(self.writer)

    @step
    def writer(self):
        self.big[7] = 3.0
        self.next(self.end)

    @step
    def end(self):
        self.total_after = float(self.big.sum())
