from aflow import FlowSpec, step


class NoNext(FlowSpec):
    @step
    def start(self):
        self.x = 1

    @step
    def end(self):
        pass
