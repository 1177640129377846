"""Which compute an AWS Batch job queue runs on, EC2 or Fargate, and what a job definition must say
for each: the queue's compute environments are asked once per queue per run (DescribeJobQueues,
DescribeComputeEnvironments).

Fargate's own rules (AWS Batch API reference, RegisterJobDefinition and ResourceRequirement; the
same text is in botocore's `batch` service model): `platformCapabilities: ["FARGATE"]`, an
execution role, a network configuration, vCPU and memory from a fixed table of pairs, no GPUs and
no `sharedMemorySize`. EC2 queues take whole vCPUs. This module knows the rules; it sends nothing.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from aflow.exception import AflowException

# Fargate's valid pairs: vCPU -> memory in MiB (ResourceRequirement.value, AWS Batch API reference).
FARGATE_MEMORY: dict[float, tuple[int, ...]] = {
    0.25: (512, 1024, 2048),
    0.5: (1024, 2048, 3072, 4096),
    1: tuple(range(2048, 8192 + 1, 1024)),
    2: tuple(range(4096, 16384 + 1, 1024)),
    4: tuple(range(8192, 30720 + 1, 1024)),
    8: tuple(range(16384, 61440 + 1, 4096)),
    16: tuple(range(32768, 122880 + 1, 8192)),
}
FARGATE_TYPES = ("FARGATE", "FARGATE_SPOT")


@dataclass(frozen=True)
class QueuePlatform:
    """A job queue and the kind of compute its environments give: "EC2" or "FARGATE"."""

    queue: str
    kind: str
    environments: tuple[str, ...] = ()
    unknown: str | None = None  # why the queue could not be asked (then EC2 is assumed)

    @property
    def fargate(self) -> bool:
        return self.kind == "FARGATE"

    @property
    def described(self) -> str:
        """For messages: "compute environment X" or "compute environments X, Y"."""
        many = "s" if len(self.environments) > 1 else ""
        return f"compute environment{many} {', '.join(self.environments) or '?'}"


def platform_of(
    queue: str, queues: list[dict[str, Any]], environments: list[dict[str, Any]]
) -> QueuePlatform:
    """The queue's platform from DescribeJobQueues' and DescribeComputeEnvironments' answers.

    A queue's environments are all EC2 or all Fargate (Batch refuses a mix); an unmanaged
    environment (no computeResources) is EC2 capacity the user runs."""
    if not queues:
        raise AflowException(
            f"AWS Batch has no job queue '{queue}' in this account and Region: check "
            "@batch(queue=...) / AFLOW_BATCH_JOB_QUEUE and AWS_DEFAULT_REGION"
        )
    kinds = {(env.get("computeResources") or {}).get("type") or "EC2" for env in environments}
    fargate = bool(kinds & set(FARGATE_TYPES))
    names = tuple(str(env.get("computeEnvironmentName", "?")) for env in environments)
    return QueuePlatform(queue, "FARGATE" if fargate else "EC2", names)


def fargate_resources(cpu: float, memory: float, step: str) -> tuple[str, int]:
    """The smallest Fargate (vCPU, memory MiB) pair that holds what the step asks."""
    for vcpu, sizes in FARGATE_MEMORY.items():
        if vcpu < cpu:
            continue
        fits = [m for m in sizes if m >= memory]
        if fits:
            return (f"{vcpu:g}", fits[0])
    raise AflowException(
        f"step '{step}' asks for {cpu:g} vCPU and {memory:g} MiB, more than a Fargate job can have "
        "(16 vCPU, 122,880 MiB): lower @resources, or use a job queue with EC2 compute"
    )


def ec2_vcpus(cpu: float) -> str:
    """EC2 queues take whole vCPUs only: a fraction (fine on Kubernetes) is rounded up."""
    return str(max(1, math.ceil(cpu)))
