from aflow import FlowSpec, step


class NoStart(FlowSpec):
    @step
    def begin(self):
        self.next(self.end)

    @step
    def end(self):
        pass
