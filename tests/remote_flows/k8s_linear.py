"""Local -> @kubernetes -> local: a list and a numpy array go to a pod and come back changed."""

import os

import numpy as np

from aflow import FlowSpec, kubernetes, step


class K8sLinearFlow(FlowSpec):
    @step
    def start(self):
        self.items = [1, 2, 3, 4]
        self.matrix = np.arange(250_000, dtype=np.float64).reshape(500, 500)
        self.launcher_pid = os.getpid()
        self.next(self.remote)

    @kubernetes(cpu=0.5, memory=512)
    @step
    def remote(self):
        self.pod = os.environ.get("HOSTNAME", "")
        self.in_pod = os.getpid() != self.launcher_pid and bool(
            os.environ.get("KUBERNETES_SERVICE_HOST")
        )
        self.total = sum(self.items)
        self.items = [*self.items, 5]
        self.matrix_sum = float(self.matrix.sum())
        self.doubled = self.matrix * 2
        print("summed remotely in", self.pod)
        self.next(self.end)

    @step
    def end(self):
        self.doubled_sum = float(self.doubled.sum())
        print("end", self.total, self.items, self.matrix_sum, self.doubled_sum)


if __name__ == "__main__":
    K8sLinearFlow()
