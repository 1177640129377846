"""@retry on a flaky remote step (its first attempt fails) and @catch on one that always fails."""

from compute import remote

from aflow import FlowSpec, catch, current, retry, step


class RemoteRetryCatchFlow(FlowSpec):
    @step
    def start(self):
        self.next(self.flaky)

    @retry(times=2, minutes_between_retries=0)
    @remote()
    @step
    def flaky(self):
        print(f"attempt {current.retry_count}")
        if current.retry_count == 0:
            raise RuntimeError("flaky: the first attempt fails")
        self.attempts = current.retry_count + 1
        self.next(self.doomed)

    @catch(var="failure")
    @remote()
    @step
    def doomed(self):
        if self.attempts:
            raise ValueError("this step always fails")
        self.next(self.end)

    @step
    def end(self):
        pass


if __name__ == "__main__":
    RemoteRetryCatchFlow()
