from aflow import FlowSpec, step


class UnknownTarget(FlowSpec):
    @step
    def start(self):
        self.next(self.train)

    @step
    def trian(self):
        self.next(self.end)

    @step
    def end(self):
        pass
