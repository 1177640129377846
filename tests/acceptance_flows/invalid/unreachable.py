from aflow import FlowSpec, step


class Unreachable(FlowSpec):
    @step
    def start(self):
        self.next(self.end)

    @step
    def lonely(self):
        self.next(self.end)

    @step
    def end(self):
        pass
