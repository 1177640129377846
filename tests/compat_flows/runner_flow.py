"""Driven from Python by Runner (test_compat.py)."""

from aflow import FlowSpec, Parameter, step


class RunnerFlow(FlowSpec):
    alpha = Parameter("alpha", default=1)
    loud = Parameter("loud", default=True)

    @step
    def start(self):
        print(f"computing with alpha={self.alpha}")
        if self.alpha < 0:
            raise ValueError("alpha must be >= 0")
        self.result = self.alpha * 2
        self.loud_seen = self.loud
        self.next(self.end)

    @step
    def end(self):
        pass


if __name__ == "__main__":
    RunnerFlow()
