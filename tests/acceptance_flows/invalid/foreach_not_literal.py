from aflow import FlowSpec, step


class ForeachVar(FlowSpec):
    @step
    def start(self):
        name = "items"
        self.items = [1]
        self.next(self.work, foreach=name)

    @step
    def work(self):
        self.next(self.join)

    @step
    def join(self, inputs):
        self.next(self.end)

    @step
    def end(self):
        pass
