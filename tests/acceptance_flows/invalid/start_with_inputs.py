from aflow import FlowSpec, step


class StartInputs(FlowSpec):
    @step
    def start(self, inputs):
        self.next(self.end)

    @step
    def end(self):
        pass
