"""A step that tags its own run through the client."""

from aflow import FlowSpec, Run, current, step


class TagsFlow(FlowSpec):
    @step
    def start(self):
        Run(f"{current.flow_name}/{current.run_id}").add_tag("from_step")
        self.next(self.end)

    @step
    def end(self):
        pass


if __name__ == "__main__":
    TagsFlow()
