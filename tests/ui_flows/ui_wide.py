"""A wide foreach for the UI tests: the run page must stay usable with 1,000 tasks in one step."""

from aflow import FlowSpec, Parameter, step


class UIWideFlow(FlowSpec):
    width = Parameter("width", default=1000)

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
        self.total = sum(i.square for i in inputs)
        self.next(self.end)

    @step
    def end(self):
        print("total", self.total)


if __name__ == "__main__":
    UIWideFlow()
