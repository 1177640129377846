"""A foreach and its join: one task per item, run in parallel, gathered in the join."""

from aflow import FlowSpec, Parameter, step


class ForeachFlow(FlowSpec):
    width = Parameter("width", default=10, help="How many items to fan out over")

    @step
    def start(self):
        self.items = list(range(self.width))
        self.next(self.work, foreach="items")

    @step
    def work(self):
        self.square = self.input * self.input
        self.next(self.join)

    @step
    def join(self, inputs):
        self.squares = [i.square for i in inputs]
        self.next(self.end)

    @step
    def end(self):
        print(f"sum of squares of 0..{self.width - 1} = {sum(self.squares)}")


if __name__ == "__main__":
    ForeachFlow()
