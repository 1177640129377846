"""Parameters the Metaflow way: repeated options, bools given as values, function defaults."""

from aflow import FlowSpec, Parameter, step


class ParamsFlow(FlowSpec):
    tags_ = Parameter("label", multiple=True, help="Repeat for several")
    sizes = Parameter("size", type=int, multiple=True, default=[1, 2])
    flag = Parameter("flag", default=True)
    who = Parameter("who", default=lambda ctx: f"{ctx.flow_name}:{ctx.parameter_name}")
    when = Parameter("when", default=lambda: 42)

    @step
    def start(self):
        self.seen = (self.tags_, self.sizes, self.flag, self.who, self.when)
        self.next(self.end)

    @step
    def end(self):
        pass


if __name__ == "__main__":
    ParamsFlow()
