"""A base flow whose steps other flow files inherit; `start` is wrapped by a functools.wraps
decorator under @step."""

import functools

from aflow import FlowSpec, step


def logged(f):
    @functools.wraps(f)
    def wrapper(self, *args, **kwargs):
        self.logged = f.__name__
        return f(self, *args, **kwargs)

    return wrapper


class BaseSteps(FlowSpec):
    @step
    @logged
    def start(self):
        self.x = 1
        self.next(self.middle)

    @step
    def end(self):
        pass
