from aflow import FlowSpec, Parameter, step


class MergeFlow(FlowSpec):
    mode = Parameter("mode", default="ok")

    @step
    def start(self):
        self.base = "base"
        self.next(self.a, self.b, self.c)

    @step
    def a(self):
        self.x = 1
        self.same = [1, 2]
        self.only_a = "A"
        self.next(self.join)

    @step
    def b(self):
        self.x = 2
        self.same = [1, 2]
        self.next(self.join)

    @step
    def c(self):
        self.x = 3
        self.same = [1, 2]
        self.next(self.join)

    @step
    def join(self, inputs):
        m = self.mode
        if m == "ok":
            self.merge_artifacts(inputs, exclude=["x"])
        elif m == "conflict":
            self.merge_artifacts(inputs)
        elif m == "preset":
            self.x = "mine"
            self.merge_artifacts(inputs)
        elif m == "include_conflict":
            self.merge_artifacts(inputs, include=["x"])
        elif m == "include_missing":
            self.merge_artifacts(inputs, include=["nope"])
        elif m == "both":
            self.merge_artifacts(inputs, include=["same"], exclude=["x"])
        elif m == "include":
            self.merge_artifacts(inputs, include=["same", "only_a"])
        self.xs = sorted(i.x for i in inputs)
        self.names = sorted([inputs.a.x, inputs.b.x, inputs.c.x])
        self.n = len(inputs)
        self.first = inputs[0].x
        self.next(self.end)

    @step
    def end(self):
        self.has_x = hasattr(self, "x")
        self.has_only_a = hasattr(self, "only_a")
        self.has_base = hasattr(self, "base")
        print(
            "x",
            getattr(self, "x", None),
            "same",
            getattr(self, "same", None),
            "only_a",
            getattr(self, "only_a", None),
            "base",
            getattr(self, "base", None),
            self.xs,
            self.names,
            self.n,
        )


if __name__ == "__main__":
    MergeFlow()
