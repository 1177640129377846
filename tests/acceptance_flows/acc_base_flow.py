from aflow import FlowSpec, Parameter, step


class BaseFlow(FlowSpec):
    lr = Parameter("lr", default=0.1)

    def helper(self):
        return self.lr * 2


class Derived(BaseFlow):
    @step
    def start(self):
        self.v = self.helper()
        self.next(self.end)

    @step
    def end(self):
        print("v", self.v)


if __name__ == "__main__":
    Derived()
