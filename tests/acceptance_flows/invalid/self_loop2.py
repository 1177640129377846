from aflow import FlowSpec, step


class SelfLoop2(FlowSpec):
    @step
    def start(self):
        self.next(self.a)

    @step
    def a(self):
        self.next(self.a)

    @step
    def end(self):
        pass
