from aflow import FlowSpec, step

class Syntax(FlowSpec):
    @step
    def start(self)
        self.next(self.end)

    @step
    def end(self):
        pass
