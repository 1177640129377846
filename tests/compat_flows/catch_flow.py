"""@catch and @timeout as Metaflow code uses them (test_compat.py runs it through the CLI)."""

import time

from aflow import FlowSpec, catch, current, retry, step, timeout


class Boom(Exception):
    pass


class CatchCompatFlow(FlowSpec):
    @step
    def start(self):
        self.items = [1, 2, 3]
        self.next(self.work, foreach="items")

    @catch(var="failure", print_exception=False)
    @step
    def work(self):
        self.before = self.input * 10
        if self.input == 2:
            raise Boom(f"no {self.input}")
        self.res = self.input
        self.next(self.join)

    @step
    def join(self, inputs):
        self.results = [i.res for i in inputs if not i.failure]
        self.kept = [i.before for i in inputs]
        self.next(self.slow)

    @catch(var="timed_out")
    @timeout(seconds=1)
    @step
    def slow(self):
        self.progress = "started"
        time.sleep(60)
        self.progress = "finished"
        self.next(self.retried)

    @catch(var="late", print_exception=False)
    @retry(times=1, minutes_between_retries=0)
    @step
    def retried(self):
        self.seen_attempt = current.retry_count
        if self.seen_attempt < 5:
            raise ValueError(f"attempt {self.seen_attempt} fails")
        self.next(self.end)

    @step
    def end(self):
        pass


if __name__ == "__main__":
    CatchCompatFlow()
