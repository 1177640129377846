"""Benchmark flow (a): four trivial steps in a line, start -> a -> b -> end."""

from aflow import FlowSpec, step


class LinearFlow(FlowSpec):
    @step
    def start(self) -> None:
        self.x = 1
        self.next(self.a)

    @step
    def a(self) -> None:
        self.x += 1
        self.label = "linear"
        self.next(self.b)

    @step
    def b(self) -> None:
        self.x += 1
        self.next(self.end)

    @step
    def end(self) -> None:
        print(f"BENCH_RESULT x={self.x}")


if __name__ == "__main__":
    LinearFlow()
