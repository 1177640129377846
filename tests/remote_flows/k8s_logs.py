"""A @kubernetes step that talks while it works, and one whose pod dies right after its last words."""

import os
import time

from aflow import FlowSpec, Parameter, kubernetes, step


class K8sLogsFlow(FlowSpec):
    crash = Parameter("crash", default=False, help="end the pod's process abruptly after printing")

    @step
    def start(self):
        self.next(self.talk)

    @kubernetes(memory=256)
    @step
    def talk(self):
        for i in range(4):
            print("tick", i, flush=True)
            time.sleep(0.4)
        print("last words", flush=True)
        if self.crash:
            os._exit(0)  # gone without a record, as when the kernel kills it
        self.next(self.end)

    @step
    def end(self):
        pass


if __name__ == "__main__":
    K8sLogsFlow()
