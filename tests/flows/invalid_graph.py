from aflow import FlowSpec, step


class InvalidFlow(FlowSpec):
    @step
    def start(self):
        self.next(self.a, self.b)

    @step
    def a(self):
        self.next(self.missing)

    @step
    def b(self):
        self.x = 1
        return  # self.next() below can never run
        self.next(self.end)

    @step
    def orphan(self):
        self.next(self.end)

    @step
    def end(self):
        pass
