"""A @pypi step asking for a package that does not exist."""

from aflow import FlowSpec, pypi, step


class PypiBadFlow(FlowSpec):
    @pypi(packages={"aflow-no-such-package-4711": "1.0"})
    @step
    def start(self):
        self.next(self.end)

    @step
    def end(self):
        pass


if __name__ == "__main__":
    PypiBadFlow()
