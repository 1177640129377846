"""A step with its own @pypi environment: six 1.16.0, whatever the scheduler has."""

from aflow import FlowSpec, pypi, step


class PypiSixFlow(FlowSpec):
    @pypi(packages={"six": "1.16.0"})
    @step
    def start(self):
        import sys

        import six

        self.six_version = six.__version__
        self.python = sys.executable
        self.next(self.end)

    @step
    def end(self):
        import six

        self.scheduler_six = six.__version__


if __name__ == "__main__":
    PypiSixFlow()
