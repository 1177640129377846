"""A remote step with its own @pypi environment, recreated in the container from the stored lock."""

from compute import remote

from aflow import FlowSpec, pypi, step


class RemotePypiFlow(FlowSpec):
    @step
    def start(self):
        self.next(self.check)

    @remote(image="example.org/team/base:3")
    @pypi(packages={"six": "1.16.0"})
    @step
    def check(self):
        import sys

        import six

        self.six_version = six.__version__
        self.python = sys.executable
        self.next(self.end)

    @step
    def end(self):
        pass


if __name__ == "__main__":
    RemotePypiFlow()
