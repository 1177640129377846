"""A @kubernetes step asking for a GPU box, in its own namespace, with scheduling constraints."""

from aflow import FlowSpec, kubernetes, resources, step


class K8sResourcesFlow(FlowSpec):
    @step
    def start(self):
        self.next(self.train)

    @kubernetes(
        gpu=1,
        memory=32000,
        cpu=4,
        image="x",
        namespace="ml-jobs",
        service_account="trainer",
        node_selector="pool=gpu,zone=a",
        tolerations=[{"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"}],
        labels={"team": "vision", "example.com/cost-center": "r-and-d"},
    )
    @resources(disk=10240, cpu=2)
    @step
    def train(self):
        self.trained = True
        self.next(self.end)

    @step
    def end(self):
        pass


if __name__ == "__main__":
    K8sResourcesFlow()
