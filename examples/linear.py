"""A linear flow: start -> a -> b -> end, each step adding to an artifact."""

from aflow import FlowSpec, Parameter, current, step


class LinearFlow(FlowSpec):
    greeting = Parameter("greeting", default="hello", help="What to say")

    @step
    def start(self):
        self.words = [self.greeting]
        print(f"starting {current.pathspec}")
        self.next(self.a)

    @step
    def a(self):
        self.words.append("from")
        self.next(self.b)

    @step
    def b(self):
        self.words.append("aflow")
        self.next(self.end)

    @step
    def end(self):
        self.sentence = " ".join(self.words)
        print(self.sentence)


if __name__ == "__main__":
    LinearFlow()
