"""The AWS Batch backend's settings: the AFLOW_BATCH_* variables (and the endpoints emulators use),
read once into a frozen object when a run's backend is made. A step's `@batch(queue=, iam_role=,
execution_role=)` wins over the variable of the same meaning. Reading only: nothing is sent.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any

from aflow.env_numbers import env_int, env_number
from aflow.exception import AflowException

DEFAULT_LOG_GROUP = "/aws/batch/job"  # where Batch sends a job's output without logConfiguration


@dataclass(frozen=True)
class BatchSettings:
    job_queue: str | None = None  # AFLOW_BATCH_JOB_QUEUE
    iam_role: str | None = None  # AFLOW_BATCH_IAM_ROLE: the job role, the container's credentials
    execution_role: str | None = None  # AFLOW_BATCH_EXECUTION_ROLE: what Fargate pulls images with
    fargate_public_ip: bool = False  # AFLOW_BATCH_FARGATE_PUBLIC_IP
    poll_seconds: float = 2.0  # AFLOW_BATCH_POLL_SECONDS: between DescribeJobs rounds
    log_group: str = DEFAULT_LOG_GROUP  # AFLOW_BATCH_LOG_GROUP
    logs_rate: float = 5.0  # AFLOW_BATCH_LOGS_RATE: GetLogEvents calls a second, for the run
    tail_tasks: int = 4  # AFLOW_BATCH_TAIL_TASKS: running tasks whose output is tailed at once
    tail_rate: float = 2.0  # AFLOW_BATCH_TAIL_RATE: store GETs a second for that tail
    endpoint_url: str | None = None  # AFLOW_BATCH_ENDPOINT_URL (an emulator)
    logs_endpoint_url: str | None = None  # AFLOW_LOGS_ENDPOINT_URL (an emulator)

    @classmethod
    def from_env(cls) -> BatchSettings:
        env = os.environ
        return cls(
            job_queue=env.get("AFLOW_BATCH_JOB_QUEUE") or None,
            iam_role=env.get("AFLOW_BATCH_IAM_ROLE") or None,
            execution_role=env.get("AFLOW_BATCH_EXECUTION_ROLE") or None,
            fargate_public_ip=env.get("AFLOW_BATCH_FARGATE_PUBLIC_IP", "") in ("1", "true", "yes"),
            poll_seconds=env_number("AFLOW_BATCH_POLL_SECONDS", cls.poll_seconds),
            log_group=env.get("AFLOW_BATCH_LOG_GROUP") or DEFAULT_LOG_GROUP,
            logs_rate=env_number("AFLOW_BATCH_LOGS_RATE", cls.logs_rate),
            tail_tasks=env_int("AFLOW_BATCH_TAIL_TASKS", cls.tail_tasks),
            tail_rate=env_number("AFLOW_BATCH_TAIL_RATE", cls.tail_rate),
            endpoint_url=env.get("AFLOW_BATCH_ENDPOINT_URL") or None,
            logs_endpoint_url=env.get("AFLOW_LOGS_ENDPOINT_URL") or None,
        )

    def queue_for(self, decorators: dict[str, dict[str, Any]]) -> str:
        queue = decorators.get("batch", {}).get("queue") or self.job_queue
        if not queue:
            raise AflowException(
                "@batch needs a job queue: pass @batch(queue=...) or set AFLOW_BATCH_JOB_QUEUE"
            )
        return str(queue)

    def role_for(self, decorators: dict[str, dict[str, Any]]) -> str | None:
        """The job role: the container's own AWS credentials (for the datastore)."""
        role = decorators.get("batch", {}).get("iam_role") or self.iam_role
        return str(role) if role else None

    def execution_role_for(self, decorators: dict[str, dict[str, Any]]) -> str | None:
        role = decorators.get("batch", {}).get("execution_role") or self.execution_role
        return str(role) if role else None


def check_step(step: str, decorators: dict[str, dict[str, Any]]) -> None:
    """What can be known wrong before the run starts."""
    try:
        BatchSettings.from_env().queue_for(decorators)
    except AflowException as e:
        raise AflowException(f"step '{step}': {e}") from None
