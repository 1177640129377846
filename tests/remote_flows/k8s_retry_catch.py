"""@retry and @catch on @kubernetes steps: one fails on its first attempt only, one always fails."""

from aflow import FlowSpec, catch, current, kubernetes, retry, step


class K8sRetryCatchFlow(FlowSpec):
    @step
    def start(self):
        self.next(self.flaky, self.doomed)

    @kubernetes(memory=256)
    @retry(times=2, minutes_between_retries=0)
    @step
    def flaky(self):
        if current.retry_count == 0:
            raise RuntimeError("first attempt fails")
        self.attempt = current.retry_count
        self.next(self.join)

    @kubernetes(memory=256)
    @catch(var="error")
    @step
    def doomed(self):
        raise ValueError("this step always fails")
        self.next(self.join)

    @step
    def join(self, inputs):
        self.attempt = inputs.flaky.attempt
        self.error = inputs.doomed.error
        self.next(self.end)

    @step
    def end(self):
        print("attempt", self.attempt, "error", self.error)


if __name__ == "__main__":
    K8sRetryCatchFlow()
