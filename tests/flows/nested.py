"""Nested foreach, a static branch inside a foreach, merge_artifacts, Parameters and numpy."""

import numpy as np

from aflow import FlowSpec, Parameter, current, step


class NestedFlow(FlowSpec):
    scale = Parameter("scale", default=2, help="multiplier")
    label = Parameter("label", default="run")
    verbose = Parameter("verbose", type=bool, default=False)

    @step
    def start(self):
        self.outer = ["a", "b", "c"]
        self.weights = np.ones(1000) * self.scale
        self.next(self.per_letter, foreach="outer")

    @step
    def per_letter(self):
        self.letter = self.input
        self.numbers = [1, 2]
        self.next(self.per_number, foreach="numbers")

    @step
    def per_number(self):
        self.value = f"{self.letter}{self.input}"
        self.stack = [(i, n) for i, n, _v in self.foreach_stack()]
        self.next(self.left, self.right)

    @step
    def left(self):
        self.side = "L"
        self.shared = 1
        self.next(self.rejoin)

    @step
    def right(self):
        self.side = "R"
        self.shared = 1
        self.next(self.rejoin)

    @step
    def rejoin(self, inputs):
        self.sides = "".join(sorted(i.side for i in inputs))
        self.merge_artifacts(inputs, exclude=["side"])
        self.next(self.join_numbers)

    @step
    def join_numbers(self, inputs):
        self.values = [i.value for i in inputs]
        self.merge_artifacts(inputs, include=["letter", "weights", "shared"])
        self.next(self.join_letters)

    @step
    def join_letters(self, inputs):
        self.all_values = [v for i in inputs for v in i.values]
        self.total_weight = float(sum(i.weights.sum() for i in inputs))
        self.next(self.end)

    @step
    def end(self):
        self.where = current.pathspec
        self.summary = f"{self.label}:{','.join(self.all_values)}"
        if self.verbose:
            print(self.summary)


if __name__ == "__main__":
    NestedFlow()
