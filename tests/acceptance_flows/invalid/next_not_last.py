from aflow import FlowSpec, step


class NextNotLast(FlowSpec):
    @step
    def start(self):
        self.next(self.end)
        self.x = 1

    @step
    def end(self):
        pass
