"""Fails in `middle` until a marker file exists; resumed by test_compat.py."""

import os

from aflow import FlowSpec, step


class ResumeCompatFlow(FlowSpec):
    @step
    def start(self):
        self.x = 1
        self.next(self.middle)

    @step
    def middle(self):
        if not os.path.exists(os.environ["AFLOW_TEST_MARKER"]):
            raise RuntimeError("not yet")
        self.next(self.end)

    @step
    def end(self):
        pass
