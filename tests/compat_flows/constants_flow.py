"""Class-level constants and the private attributes Metaflow code reads (test_compat.py)."""

from aflow import FlowSpec, Parameter, current, step


class ConstantsFlow(FlowSpec):
    K = 123
    LABEL = "const"
    ITEMS = [10, 20]
    alpha = Parameter("alpha", default=4)

    @step
    def start(self):
        try:
            self.K = 5
        except AttributeError as e:
            self.refused = str(e)
        graph = self._graph
        self.types = {n: graph[n].type for n in ("work", "join", "end")}
        self.join_in = graph["join"].in_funcs
        self.start_out = graph["start"].out_funcs
        self.current_step = self._current_step
        self.params = current.parameter_names
        self.next(self.work, foreach="ITEMS")

    @step
    def work(self):
        self.stack = [(f.step, f.var, f.num_splits, f.index, f.value) for f in self._foreach_stack]
        self.plain = self.foreach_stack()
        self.seen = (self.K, self.LABEL, self._current_step)
        self.next(self.join)

    @step
    def join(self, inputs):
        self.stacks = [i.stack for i in inputs]
        self.in_join = (self.K, self.alpha)
        self.next(self.end)

    @step
    def end(self):
        pass
