"""Two flows in one file: the one started under `__main__` runs, as in Metaflow (test_compat.py)."""

from aflow import FlowSpec, step


class HelperFlow(FlowSpec):
    @step
    def start(self):
        self.next(self.end)

    @step
    def end(self):
        self.which = "helper"


class MainFlow(FlowSpec):
    @step
    def start(self):
        self.skip = False
        if self.skip:
            return  # a path that leaves early: Metaflow accepts it
        self.next(self.end)

    @step
    def end(self):
        self.which = "main"


if __name__ == "__main__":
    MainFlow()
