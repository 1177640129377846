"""Output as ML code writes it: progress frames ending in \\r, ANSI colours, one enormous line
(tests/test_task_output.py)."""

import sys

from aflow import FlowSpec, Parameter, step


class NoisyOutputFlow(FlowSpec):
    huge = Parameter("huge", default=20_000_000, type=int, help="bytes in the one long line")

    @step
    def start(self):
        for pct in range(0, 101, 10):
            sys.stdout.write(f"\rtraining: {pct:3d}%|{'#' * (pct // 10):<10}|")
            sys.stdout.flush()
        sys.stdout.write("\n")
        print("\x1b[32mgreen\x1b[0m and plain")
        sys.stdout.write("head-" + "x" * self.huge + "-tail\n")
        print("after the long line")
        self.next(self.end)

    @step
    def end(self):
        pass


if __name__ == "__main__":
    NoisyOutputFlow()
