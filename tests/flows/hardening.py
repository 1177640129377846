"""Flows for the backend's edge cases: many tasks at once, tasks that leave processes behind."""

import os
import subprocess
import time

from aflow import FlowSpec, Parameter, step


class WideFlow(FlowSpec):
    width = Parameter("width", default=10)
    nap = Parameter("nap", default=0.0)

    @step
    def start(self):
        self.items = list(range(self.width))
        self.next(self.work, foreach="items")

    @step
    def work(self):
        time.sleep(self.nap)
        self.pid = os.getpid()
        self.next(self.join)

    @step
    def join(self, inputs):
        self.count = len({i.pid for i in inputs})
        self.next(self.end)

    @step
    def end(self):
        pass


class LeavesHelperFlow(FlowSpec):
    @step
    def start(self):
        helper = subprocess.Popen(["sleep", "37"])
        self.helper_pid = helper.pid
        print(f"helper {helper.pid}", flush=True)
        self.next(self.end)

    @step
    def end(self):
        pass


class StoppedFlow(FlowSpec):
    @step
    def start(self):
        self.items = [0, 1]
        self.next(self.work, foreach="items")

    @step
    def work(self):
        if self.input == 0:
            print("about to fail", flush=True)
            time.sleep(0.5)
            raise RuntimeError("boom")
        print("sleeping", flush=True)
        time.sleep(60)
        self.next(self.join)

    @step
    def join(self, inputs):
        self.next(self.end)

    @step
    def end(self):
        pass


class MergeSelfFlow(FlowSpec):
    @step
    def start(self):
        self.next(self.a, self.b)

    @step
    def a(self):
        self.z = 1
        self.shared = "s"
        self.next(self.join)

    @step
    def b(self):
        self.z = 2
        self.shared = "s"
        self.next(self.join)

    @step
    def join(self, inputs):
        self.z = 3
        self.merge_artifacts(inputs, include=["z", "shared"])
        self.next(self.end)

    @step
    def end(self):
        pass
