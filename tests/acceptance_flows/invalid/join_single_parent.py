from aflow import FlowSpec, step


class JoinSingle(FlowSpec):
    @step
    def start(self):
        self.next(self.j)

    @step
    def j(self, inputs):
        self.next(self.end)

    @step
    def end(self):
        pass
