from aflow import FlowSpec, step


class FlowOne(FlowSpec):
    @step
    def start(self):
        self.next(self.end)

    @step
    def end(self):
        print("one")


class FlowTwo(FlowSpec):
    @step
    def start(self):
        self.next(self.end)

    @step
    def end(self):
        print("two")


if __name__ == "__main__":
    FlowTwo()
