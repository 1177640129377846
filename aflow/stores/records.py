"""Run and task records: what the store says about a run and each task attempt (msgpack).

A task record is written last, after every blob it names, and is the commit point: a task is done
when its record says so. The scheduler learns what a task produced (its foreach width, its status)
only from here, so a local task and a remote one look the same to it.
"""

from __future__ import annotations

import dataclasses
import functools
from dataclasses import dataclass, field
from typing import Any

import msgpack

from aflow.stores.artifacts import ArtifactRef
from aflow.stores.base import Buffer

HEARTBEAT_SECONDS = 5.0
HEARTBEAT_STALE = 6 * HEARTBEAT_SECONDS


def run_prefix(flow: str, run_id: str) -> str:
    return f"{flow}/{run_id}"


def run_record_key(flow: str, run_id: str) -> str:
    return f"{flow}/{run_id}/run.mpk"


def task_prefix(flow: str, run_id: str, step: str, task_id: str) -> str:
    return f"{flow}/{run_id}/{step}/{task_id}"


def task_record_key(flow: str, run_id: str, step: str, task_id: str, attempt: int) -> str:
    return f"{task_prefix(flow, run_id, step, task_id)}/{attempt}.mpk"


def task_log_key(flow: str, run_id: str, step: str, task_id: str, attempt: int) -> str:
    return f"{task_prefix(flow, run_id, step, task_id)}/{attempt}.log"


class _Record:
    def pack(self) -> bytes:
        return msgpack.packb({n: getattr(self, n) for n in _field_names(type(self))}, use_bin_type=True)

    @classmethod
    def unpack(cls, data: Buffer):  # type: ignore[no-untyped-def]
        raw = msgpack.unpackb(data, raw=False)
        known = _field_names(cls)
        # Fields a newer aflow added are ignored, so old and new versions read each other.
        return cls(**{k: v for k, v in raw.items() if k in known})


@functools.cache
def _field_names(cls: type) -> tuple[str, ...]:
    return tuple(f.name for f in dataclasses.fields(cls))


Frame = list[Any]
"""One enclosing foreach: [split step, index, num_splits, items digest]."""


@dataclass
class TaskRecord(_Record):
    flow: str
    run_id: str
    step: str
    task_id: str
    attempt: int = 0
    status: str = "done"  # done | failed | stopped (the engine or the platform stopped it)
    artifacts: dict[str, ArtifactRef] = field(default_factory=dict)
    foreach_stack: list[Frame] = field(default_factory=list)
    parents: list[str] = field(default_factory=list)
    parents_manifest: str | None = None
    next_steps: list[str] = field(default_factory=list)
    num_splits: int | None = None
    split_digest: str | None = None
    started_at: float = 0.0
    finished_at: float = 0.0
    error: dict[str, str] | None = None
    pid: int | None = None
    cloned_from: str | None = None  # the origin run's task this one reuses (resume)
    backend: str = "local"  # where it ran: local, batch, kubernetes
    job_id: str | None = None  # the remote job (Batch job id, Kubernetes pod name)
    image: str | None = None  # the container image a remote task ran in
    env_key: str | None = None  # its @pypi/@conda environment
    python_version: str | None = None  # the interpreter that ran it (Metaflow's metadata has it)

    @property
    def pathspec(self) -> str:
        return f"{self.flow}/{self.run_id}/{self.step}/{self.task_id}"

    @property
    def ok(self) -> bool:
        return self.status == "done"

    @property
    def stopped(self) -> bool:
        """Stopped from outside (SIGTERM), not failed by its own code; older records said so
        with status 'failed' and the error type TaskTerminated."""
        return self.status == "stopped" or (self.error or {}).get("type") == "TaskTerminated"


@dataclass
class RunRecord(_Record):
    flow: str
    run_id: str
    status: str = "running"  # running | done | failed | cancelled
    params: dict[str, str] = field(default_factory=dict)  # for people: repr of each value
    param_refs: dict[str, ArtifactRef] = field(default_factory=dict)  # for resume: the values
    graph: dict[str, Any] = field(default_factory=dict)
    started_at: float = 0.0
    finished_at: float | None = None
    error: dict[str, str] | None = None
    user: str | None = None
    tags: list[str] = field(default_factory=list)
    datastore: str = "local"
    end_task: str | None = None
    heartbeat_at: float = 0.0  # rewritten every HEARTBEAT_SECONDS while the scheduler lives
    origin_run_id: str | None = None  # the run this one resumed
    tasks_done: int = 0
    tasks_failed: int = 0
    tasks_stopped: int = 0  # stopped by the engine once the run was failing or cancelled

    @property
    def pathspec(self) -> str:
        return f"{self.flow}/{self.run_id}"

    def liveness(self, now: float) -> str:
        """The status, except that a 'running' run whose heartbeat stopped is 'dead'."""
        if self.status == "running" and now - self.heartbeat_at > HEARTBEAT_STALE:
            return "dead"
        return self.status
