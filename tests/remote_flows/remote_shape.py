"""A remote step asking for a big machine: the request's shape is what the tests inspect."""

from compute import remote

from aflow import FlowSpec, resources, step


class RemoteShapeFlow(FlowSpec):
    @step
    def start(self):
        self.next(self.big)

    @resources(cpu=4, memory=16000)
    @remote(gpu=1, memory=32000, image="example.org/team/trainer:1.2")
    @step
    def big(self):
        self.ok = True
        self.next(self.end)

    @step
    def end(self):
        pass


if __name__ == "__main__":
    RemoteShapeFlow()
