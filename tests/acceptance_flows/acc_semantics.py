from aflow import FlowSpec, current, step


class Semantics(FlowSpec):
    CONSTANT = 7

    @step
    def start(self):
        self.start_input = self.input
        self.start_index = self.index
        self.start_stack = self.foreach_stack()
        self._private = "hidden"
        self.letters = ["a", "b"]
        self.shared = "from start"
        self.next(self.outer, foreach="letters")

    @step
    def outer(self):
        self.letter = self.input
        self.nums = range(10, 13)
        self.next(self.inner, foreach="nums")

    @step
    def inner(self):
        self.num = self.input
        self.inner_stack = self.foreach_stack()
        self.next(self.left, self.right)

    @step
    def left(self):
        self.left_seen = (self.input, self.index, self.foreach_stack())
        self.next(self.both)

    @step
    def right(self):
        self.right_seen = (self.input, self.index)
        self.next(self.both)

    @step
    def both(self, inputs):
        self.seen = (inputs.left.left_seen, inputs.right.right_seen)
        self.join_input = (self.input, self.index)
        try:
            self.shared_before_merge = self.shared
        except AttributeError:
            self.shared_before_merge = "AttributeError"
        self.merge_artifacts(inputs)
        self.next(self.inner_join)

    @step
    def inner_join(self, inputs):
        self.after_inner = (self.input, self.index, self.foreach_stack())
        self.seen_all = [i.seen for i in inputs]
        self.n_inputs = len(inputs)
        self.nums_seen = [i.num for i in inputs]
        self.sbm = inputs[0].shared_before_merge
        self.next(self.outer_join)

    @step
    def outer_join(self, inputs):
        self.after_outer = (self.input, self.index, self.foreach_stack())
        self.all_after_inner = [i.after_inner for i in inputs]
        self.all_nums = [i.nums_seen for i in inputs]
        self.sbm = inputs[0].sbm
        self.seen_all = [i.seen_all for i in inputs]
        self.has_private_in_input = hasattr(inputs[0], "_private")
        self.next(self.end)

    @step
    def end(self):
        self.const = self.CONSTANT
        self.has_private = hasattr(self, "_private")
        self.ps = current.pathspec


if __name__ == "__main__":
    Semantics()
