"""A step that prints, waits, prints again: its log is read while it runs."""

import time

from aflow import FlowSpec, step


class SlowPrinterFlow(FlowSpec):
    @step
    def start(self):
        print("first line", flush=True)
        time.sleep(6)
        print("last line", flush=True)
        self.next(self.end)

    @step
    def end(self):
        pass


if __name__ == "__main__":
    SlowPrinterFlow()
