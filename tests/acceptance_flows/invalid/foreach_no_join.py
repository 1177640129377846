from aflow import FlowSpec, step


class ForeachNoJoin(FlowSpec):
    @step
    def start(self):
        self.items = [1, 2]
        self.next(self.work, foreach="items")

    @step
    def work(self):
        self.next(self.end)

    @step
    def end(self):
        pass
