"""The flow the inspection tests read back: a foreach that prints on both streams and may fail."""

import sys

from aflow import FlowSpec, Parameter, step


class InspectFlow(FlowSpec):
    """Squares a few numbers, printing as it goes."""

    fail = Parameter("fail", default=False, help="Make item 1 raise")
    width = Parameter("width", default=3)

    @step
    def start(self):
        """Fan out over the items."""
        print("starting")
        self.items = list(range(self.width))
        self.big = b"x" * 4096
        self.next(self.work, foreach="items")

    @step
    def work(self):
        """Square one item."""
        print(f"work {self.input}")
        print(f"warn {self.input}", file=sys.stderr)
        if self.fail and self.input == 1:
            raise ValueError("bad item 1")
        self.square = self.input**2
        self.next(self.join)

    @step
    def join(self, inputs):
        self.squares = [i.square for i in inputs]
        self.next(self.end)

    @step
    def end(self):
        print("total", sum(self.squares))


if __name__ == "__main__":
    InspectFlow()
