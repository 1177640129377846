from aflow import FlowSpec, step


class ForeachTwo(FlowSpec):
    @step
    def start(self):
        self.items = [1, 2]
        self.next(self.a, self.b, foreach="items")

    @step
    def a(self):
        self.next(self.join)

    @step
    def b(self):
        self.next(self.join)

    @step
    def join(self, inputs):
        self.next(self.end)

    @step
    def end(self):
        pass
