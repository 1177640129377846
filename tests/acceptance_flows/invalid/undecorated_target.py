from aflow import FlowSpec, step


class Undecorated(FlowSpec):
    @step
    def start(self):
        self.next(self.helper)

    def helper(self):
        self.next(self.end)

    @step
    def end(self):
        pass
