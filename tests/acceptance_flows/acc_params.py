from aflow import FlowSpec, JSONType, Parameter, step


class ParamsFlow(FlowSpec):
    count = Parameter("count", default=3, help="an int")
    ratio = Parameter("ratio", default=0.5)
    title = Parameter("title", default="hello")
    flag = Parameter("flag", default=False, type=bool)
    config = Parameter("config", type=JSONType, default='{"a": [1, 2]}')
    must = Parameter("must", type=int, required=True)
    learning_rate = Parameter("learning_rate", default=0.01)
    batch = Parameter("batch-size", default=32)
    nodef = Parameter("nodef", help="no default, not required")

    @step
    def start(self):
        self.seen = {
            k: (getattr(self, k), type(getattr(self, k)).__name__)
            for k in ["count", "ratio", "title", "flag", "config", "must", "learning_rate", "nodef"]
        }
        print("SEEN", self.seen)
        self.next(self.end)

    @step
    def end(self):
        self.config_in_end = self.config
        print("END", self.count, self.config["a"])


if __name__ == "__main__":
    ParamsFlow()
