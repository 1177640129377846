"""A @kubernetes step with a label the API would refuse."""

from aflow import FlowSpec, kubernetes, step


class K8sBadLabelFlow(FlowSpec):
    @step
    def start(self):
        self.next(self.remote)

    @kubernetes(labels={"team": "not a valid value!"})
    @step
    def remote(self):
        self.next(self.end)

    @step
    def end(self):
        pass


if __name__ == "__main__":
    K8sBadLabelFlow()
