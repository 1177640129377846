"""What Metaflow code reads in a step and from the client afterwards (test_compat.py)."""

from aflow import Flow, FlowSpec, Parameter, Run, current, get_metadata, step
from aflow.exception import (  # noqa: F401 - the names Metaflow flows import
    ExternalCommandFailed,
    MetaflowException,
    MetaflowNotFound,
    UnhandledInMergeArtifactsException,
)
from aflow.metaflow_current import current as metaflow_current


class LineageFlow(FlowSpec):
    alpha = Parameter("alpha", default=2)

    @step
    def start(self):
        self.parameter_names = current.parameter_names
        self.username = current.username
        self.namespace = current.namespace
        self.same_current = metaflow_current is current
        self.items = [1, 2, 3]
        self.next(self.work, foreach="items")

    @step
    def work(self):
        self.square = self.input**2
        print(f"square {self.square}")
        self.next(self.join)

    @step
    def join(self, inputs):
        self.squares = [i.square for i in inputs]
        # The run's own store, whatever the current directory or environment say.
        self.seen_run = Run(f"{current.flow_name}/{current.run_id}").id
        self.latest = Flow(current.flow_name).latest_run.id
        self.where = get_metadata()
        self.me = current.task.pathspec
        self.next(self.end)

    @step
    def end(self):
        pass


if __name__ == "__main__":
    LineageFlow()
