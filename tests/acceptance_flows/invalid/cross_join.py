from aflow import FlowSpec, step


class CrossJoin(FlowSpec):
    @step
    def start(self):
        self.next(self.a, self.b)

    @step
    def a(self):
        self.next(self.a1, self.a2)

    @step
    def a1(self):
        self.next(self.j)

    @step
    def a2(self):
        self.next(self.j2)

    @step
    def b(self):
        self.next(self.j)

    @step
    def j(self, inputs):
        self.next(self.j2)

    @step
    def j2(self, inputs):
        self.next(self.end)

    @step
    def end(self):
        pass
