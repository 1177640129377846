"""A static branch and its join: two steps run side by side, the join merges what they agree on."""

from aflow import FlowSpec, step


class BranchFlow(FlowSpec):
    @step
    def start(self):
        self.base = 10
        self.next(self.double, self.square)

    @step
    def double(self):
        self.result = self.base * 2
        self.next(self.join)

    @step
    def square(self):
        self.result = self.base**2
        self.next(self.join)

    @step
    def join(self, inputs):
        self.results = {"double": inputs.double.result, "square": inputs.square.result}
        self.merge_artifacts(inputs, exclude=["result"])
        self.next(self.end)

    @step
    def end(self):
        print(f"base={self.base} results={self.results}")


if __name__ == "__main__":
    BranchFlow()
