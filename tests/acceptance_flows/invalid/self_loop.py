from aflow import FlowSpec, step


class SelfLoop(FlowSpec):
    @step
    def start(self):
        self.next(self.start)

    @step
    def end(self):
        pass
