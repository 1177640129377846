"""local -> remote -> local, passing a list both ways, printing from the remote step."""

from compute import remote

from aflow import FlowSpec, current, step


class RemoteListFlow(FlowSpec):
    @step
    def start(self):
        self.items = [1, 2, 3]
        self.next(self.double)

    @remote(cpu=1, memory=512)
    @step
    def double(self):
        self.doubled = [x * 2 for x in self.items]
        print(f"doubling on {current.step_name}: {self.doubled}")
        self.next(self.end)

    @step
    def end(self):
        assert self.doubled == [2, 4, 6], self.doubled
        self.result = sum(self.doubled)


if __name__ == "__main__":
    RemoteListFlow()
