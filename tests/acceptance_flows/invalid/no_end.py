from aflow import FlowSpec, step


class NoEnd(FlowSpec):
    @step
    def start(self):
        self.next(self.finish)

    @step
    def finish(self):
        pass
