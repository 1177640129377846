"""A flow whose steps ask for @conda (via @conda_base), one opting out."""

from aflow import FlowSpec, conda, conda_base, step


@conda_base(libraries={"numpy": "1.26.4"}, python="3.11")
class CondaFlow(FlowSpec):
    @step
    def start(self):
        self.next(self.end)

    @conda(disabled=True)
    @step
    def end(self):
        pass


if __name__ == "__main__":
    CondaFlow()
