"""What a task's process learns from its environment, read once when it starts a task.

`TaskSettings` is what any task process reads (where it runs, for its record; `current.tempdir`).
`ContainerSettings` is what a remote backend and the bootstrap hand a container (engine/bootstrap.py
sets them, backends/remote.py chooses them): which store, which spec of the job's list, where the
code was unpacked. Users set none of the latter; the README lists them as set by aflow.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass

# Where a platform says which child of an array job this container is: aflow's own first, then AWS
# Batch's array index, then a Kubernetes Indexed Job's completion index.
ARRAY_INDEX_VARS = ("AFLOW_TASK_INDEX", "AWS_BATCH_JOB_ARRAY_INDEX", "JOB_COMPLETION_INDEX")


@dataclass(frozen=True)
class TaskSettings:
    backend: str = "local"  # AFLOW_BACKEND: local, batch, kubernetes
    job_id: str | None = None  # AWS_BATCH_JOB_ID, or the pod's name (AFLOW_POD_NAME)
    image: str | None = None  # AFLOW_IMAGE: the container image a remote task runs in
    tempdir: str = "."  # AFLOW_TEMPDIR: current.tempdir

    @classmethod
    def from_env(cls, env: Mapping[str, str] = os.environ) -> TaskSettings:
        return cls(
            backend=env.get("AFLOW_BACKEND") or cls.backend,
            job_id=env.get("AWS_BATCH_JOB_ID") or env.get("AFLOW_POD_NAME"),
            image=env.get("AFLOW_IMAGE"),
            tempdir=env.get("AFLOW_TEMPDIR") or cls.tempdir,
        )


@dataclass(frozen=True)
class ContainerSettings:
    datastore: str  # AFLOW_DATASTORE
    datastore_root: str  # AFLOW_DATASTORE_ROOT
    flow_name: str  # AFLOW_FLOW_NAME
    task_specs: str  # AFLOW_TASK_SPECS: the digest of the job's packed list of TaskSpecs
    task_count: int = 1  # AFLOW_TASK_COUNT: how many tasks the job runs
    index: int = 0  # this container's place in that list (ARRAY_INDEX_VARS)
    code_dir: str = ""  # AFLOW_CODE_DIR: where the bootstrap unpacked the code (default: cwd)
    save_output: bool = False  # AFLOW_SAVE_OUTPUT=1: the runtime saves its own output
    # AFLOW_RECORDED_FAILURE_EXIT=0: a failure the record tells exits 0, so a Kubernetes Indexed
    # Job does not stop its other tasks over it
    recorded_failure_exits_zero: bool = False
    boot_notes: str | None = None  # AFLOW_BOOT_NOTES: what the bootstrap printed, in a file

    @classmethod
    def from_env(cls, env: Mapping[str, str] = os.environ) -> ContainerSettings:
        return cls(
            datastore=env["AFLOW_DATASTORE"],
            datastore_root=env["AFLOW_DATASTORE_ROOT"],
            flow_name=env["AFLOW_FLOW_NAME"],
            task_specs=env["AFLOW_TASK_SPECS"],
            task_count=int(env.get("AFLOW_TASK_COUNT") or 1),
            index=next((int(env[v]) for v in ARRAY_INDEX_VARS if env.get(v)), 0),
            code_dir=env.get("AFLOW_CODE_DIR") or os.getcwd(),
            save_output=env.get("AFLOW_SAVE_OUTPUT") == "1",
            recorded_failure_exits_zero=env.get("AFLOW_RECORDED_FAILURE_EXIT") == "0",
            boot_notes=env.get("AFLOW_BOOT_NOTES"),
        )
