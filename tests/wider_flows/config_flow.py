"""Configs used in decorators, in a parameter's default, in a config_expr and in steps."""

import os

from aflow import Config, FlowSpec, Parameter, config_expr, environment, resources, retry, step


def lines(text):
    """A parser of `key=value` lines, for parser=."""
    return dict(line.split("=", 1) for line in text.splitlines() if line.strip())


class ConfigFlow(FlowSpec):
    config = Config("config", default_value={"lr": 0.1, "cpu": 2, "env": {"MODE": "default"}})
    extra = Config("extra", default="extra.kv", parser=lines)
    plain = Config("plain", default_value='["a", "b"]', plain=True)
    lr = Parameter("lr", default=config.lr)

    @retry(times=config_expr("config.cpu - 1"))
    @environment(vars=config.env)
    @resources(cpu=config.cpu)
    @step
    def start(self):
        self.seen = {
            "lr": self.config.lr,
            "lr_param": self.lr,
            "mode": os.environ.get("MODE"),
            "cpu": self.config["cpu"],
            "extra": dict(self.extra) if self.extra is not None else None,
            "plain": self.plain,
        }
        try:
            self.config.lr = 5
        except TypeError as e:
            self.read_only = str(e)
        self.next(self.end)

    @step
    def end(self):
        pass


if __name__ == "__main__":
    ConfigFlow()
