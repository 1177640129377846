from aflow import FlowSpec, step


class JoinMismatch(FlowSpec):
    @step
    def start(self):
        self.next(self.a, self.b)

    @step
    def a(self):
        self.items = [1, 2]
        self.next(self.c, foreach="items")

    @step
    def c(self):
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
