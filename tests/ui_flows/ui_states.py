"""Every state a task can end in, for the UI tests: a step retried once (its first attempt fails),
a step whose failure @catch records, and a foreach whose item 0 fails (with UI_STATES_FAIL set) while
its siblings are still asleep, so the engine stops them. Resumed without UI_STATES_FAIL, the run's
finished tasks are reused and the foreach reruns."""

import os
import time

from aflow import FlowSpec, catch, current, retry, step


class UIStatesFlow(FlowSpec):
    @step
    def start(self):
        self.items = [0, 1, 2, 3]
        self.next(self.flaky)

    @retry(times=1, minutes_between_retries=0)
    @step
    def flaky(self):
        """Fails its first attempt, passes its second."""
        print(f"attempt {current.retry_count}")
        if current.retry_count == 0:
            raise RuntimeError("flaky the first time")
        self.next(self.risky)

    @catch(var="risk_error")
    @step
    def risky(self):
        """Always fails; @catch records it and the flow goes on."""
        if self.items:
            raise ValueError("risky failed, and @catch recorded it")
        self.next(self.fan)

    @step
    def fan(self):
        self.next(self.work, foreach="items")

    @step
    def work(self):
        if os.environ.get("UI_STATES_FAIL"):
            if self.input == 0:
                time.sleep(0.5)
                raise ValueError("item 0 is bad")
            time.sleep(30)  # still asleep when item 0 fails: the engine stops it
        self.next(self.join)

    @step
    def join(self, inputs):
        self.next(self.end)

    @step
    def end(self):
        pass


if __name__ == "__main__":
    UIStatesFlow()
