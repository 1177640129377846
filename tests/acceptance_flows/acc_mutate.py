from aflow import FlowSpec, Parameter, step


class Mutate(FlowSpec):
    alpha = Parameter("alpha", default=1)
    mode = Parameter("mode", default="param")

    @step
    def start(self):
        if self.mode == "param":
            self.alpha = 5
        elif self.mode == "stepname":
            self.end = 3
        elif self.mode == "delete":
            self.x = 1
            del self.x
        elif self.mode == "del_param":
            del self.alpha
        self.next(self.end)

    @step
    def end(self):
        print("alpha", self.alpha, "x", getattr(self, "x", "nox"))


if __name__ == "__main__":
    Mutate()
