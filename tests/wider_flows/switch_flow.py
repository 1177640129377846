"""Conditional steps and recursion: a switch by a parameter, a branch meeting point, and a step
that loops back to an earlier one until a count is reached."""

from aflow import Config, FlowSpec, Parameter, step


class SwitchFlow(FlowSpec):
    mode = Parameter("mode", default="fast")
    rounds = Parameter("rounds", default=3)
    cfg = Config("cfg", default_value={"pick": "b"})

    @step
    def start(self):
        self.count = 0
        self.trail = ["start"]
        self.next({"fast": self.fast, "slow": self.slow}, condition="mode")

    @step
    def fast(self):
        self.trail = [*self.trail, "fast"]
        self.next(self.loop)

    @step
    def slow(self):
        self.trail = [*self.trail, "slow"]
        self.next(self.loop)

    @step
    def loop(self):
        self.count += 1
        self.trail = [*self.trail, f"loop{self.count}"]
        self.again = self.count < self.rounds
        self.next(self.check)

    @step
    def check(self):
        self.next({True: self.loop, False: self.pick}, condition="again")

    @step
    def pick(self):
        self.choice = "b"
        self.next({self.cfg.pick: self.b, "other": self.end}, condition="choice")

    @step
    def b(self):
        self.trail = [*self.trail, "b"]
        self.next(self.end)

    @step
    def end(self):
        pass


if __name__ == "__main__":
    SwitchFlow()
