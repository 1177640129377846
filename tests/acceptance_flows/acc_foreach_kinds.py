from aflow import FlowSpec, Parameter, step


class ForeachKinds(FlowSpec):
    kind = Parameter("kind", default="list")

    @step
    def start(self):
        k = self.kind
        if k == "list":
            self.items = ["a", "b", "c"]
        elif k == "tuple":
            self.items = ("a", "b", "c")
        elif k == "dict":
            self.items = {"a": 1, "b": 2, "c": 3}
        elif k == "range":
            self.items = range(3)
        elif k == "gen":
            self.items = (x for x in "abc")
        elif k == "str":
            self.items = "abc"
        elif k == "set":
            self.items = {"only"}
        elif k == "empty":
            self.items = []
        elif k == "int":
            self.items = 5
        elif k == "none":
            self.items = None
        elif k == "missing":
            pass
        elif k == "nparray":
            import numpy as np

            self.items = np.arange(3)
        self.next(self.work, foreach="items")

    @step
    def work(self):
        self.got = (self.index, self.input)
        self.next(self.join)

    @step
    def join(self, inputs):
        self.got = [i.got for i in inputs]
        self.next(self.end)

    @step
    def end(self):
        print("RESULT", self.kind, self.got)


if __name__ == "__main__":
    ForeachKinds()
