"""A step whose process dies of a segfault (test_compat.py)."""

import ctypes

from aflow import FlowSpec, step


class CrashFlow(FlowSpec):
    @step
    def start(self):
        print("about to crash", flush=True)
        ctypes.string_at(0)  # reads address 0: SIGSEGV
        self.next(self.end)

    @step
    def end(self):
        pass
