import contextlib

from aflow import FlowSpec, step


class StaticFP(FlowSpec):
    @step
    def start(self):
        """Docstring."""

        def helper(x):
            if x > 1:
                return x * 2
            return x

        class Local:
            def method(self):
                return 1

        self.vals = [helper(i) for i in range(3)] + [Local().method()]
        try:
            self.r = 1 / 1
        except ZeroDivisionError:
            self.r = None
        finally:
            pass
        with contextlib.suppress(Exception):
            self.z = 2
        for i in range(2):
            if i:
                continue
        while False:
            break
        f = lambda: 3  # noqa
        self.f = f()
        self.next(self.middle)

    @step
    async def middle(self):
        async def inner():
            return 5

        self.v = await inner()
        self.next(self.end)

    @step
    def end(self):
        print("vals", self.vals, self.v, self.f)


if __name__ == "__main__":
    StaticFP()
