from aflow import FlowSpec, step


class NonJoinInputs(FlowSpec):
    @step
    def start(self):
        self.next(self.middle)

    @step
    def middle(self, inputs):
        self.next(self.end)

    @step
    def end(self):
        pass
