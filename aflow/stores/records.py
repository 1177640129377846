"""Run and task records: what the store says about a run and each task attempt (msgpack).

A task record is written last, after every blob it names, and is the commit point: a task is done
when its record says so. The scheduler learns what a task produced (its foreach width, its status)
only from here, so a local task and a remote one look the same to it.
"""

from __future__ import annotations

import dataclasses
import os
import socket
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal, TypeVar

import msgpack

from aflow.exception import TaskTerminated
from aflow.frames import Frame, frames
from aflow.stores.artifacts import ArtifactRef
from aflow.stores.base import BlockingObjectStore, Buffer, ObjectStore, store_path
from aflow.stores.integrity import damaged_record, record_problem, seal_record

if TYPE_CHECKING:
    from aflow.engine.wire import TaskSpec  # only its fields are read: the store knows no engine

R = TypeVar("R", bound="_Record")
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


def task_start_key(flow: str, run_id: str, step: str, task_id: str, attempt: int) -> str:
    """The attempt's start marker (TaskStart); not `.mpk`: nothing that reads task records
    (resume, verify, lineage) mistakes it for one."""
    return f"{task_prefix(flow, run_id, step, task_id)}/{attempt}.start"


async def read_record(store: ObjectStore, cls: type[R], key: str) -> R:
    """The record under `key`; NotFound, or DamagedData naming its path."""
    return cls.unpack(await store.get(key), store_path(store.url, key))


def read_record_sync(store: BlockingObjectStore, cls: type[R], key: str) -> R:
    return cls.unpack(store.get(key), store_path(store.url, key))


class _Record:
    def pack(self) -> bytes:
        fields = {n: getattr(self, n) for n in _field_names(type(self))}
        # Sealed with a CRC as its last entry, so a damaged record is told from a valid one.
        return seal_record(msgpack.packb({**fields, "_crc": bytes(4)}, use_bin_type=True))

    @classmethod
    def unpack(cls: type[R], data: Buffer, path: str = "") -> R:
        """The record in `data`; DamagedData naming `path` (the file or object) when it is not
        a whole, intact record."""
        where = path or f"a {cls.__name__}"
        problem = record_problem(data)
        if problem is None:
            try:
                raw = msgpack.unpackb(data, raw=False)
            except (ValueError, TypeError) as e:  # msgpack's errors are ValueErrors
                problem = f"truncated or unreadable: {e}" if memoryview(data).nbytes else "empty"
            else:
                if not isinstance(raw, dict):
                    problem = "not a record"
        if problem is None:
            known = _field_names(cls)
            # Fields a newer aflow added are ignored, so old and new versions read each other.
            try:
                return cls(**{k: v for k, v in raw.items() if k in known})
            except TypeError as e:
                problem = f"fields missing: {e}"
        raise damaged_record(where, problem)


def _field_names(cls: type) -> tuple[str, ...]:
    names = _FIELDS.get(cls)
    if names is None:
        names = _FIELDS[cls] = tuple(f.name for f in dataclasses.fields(cls))
    return names


_FIELDS: dict[type, tuple[str, ...]] = {}


TaskStatus = Literal["done", "failed", "stopped"]
RunStatus = Literal["running", "done", "failed", "cancelled"]
# What a reader sees of a run: its status, or "dead" for a running run whose heartbeat stopped.
RunLiveness = RunStatus | Literal["dead"]
"""As recorded; a reader also derives "dead" (a running run whose heartbeat stopped)."""

@dataclass
class TaskRecord(_Record):
    flow: str
    run_id: str
    step: str
    task_id: str
    attempt: int = 0
    status: TaskStatus = "done"  # stopped: the engine or the platform stopped it
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

    def __post_init__(self) -> None:
        self.foreach_stack = frames(self.foreach_stack)  # msgpack gives lists back

    @classmethod
    def for_spec(cls, spec: TaskSpec, **fields: Any) -> TaskRecord:
        """The record of the attempt `spec` describes: who it is, its foreach frames and parents
        from the spec; how it went (status, times, error, where it ran) from `fields`."""
        return cls(
            flow=spec.flow_name,
            run_id=spec.run_id,
            step=spec.step,
            task_id=spec.task_id,
            attempt=spec.attempt,
            foreach_stack=spec.foreach_stack,
            parents=spec.parents,
            parents_manifest=spec.parents_manifest,
            **fields,
        )

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
        return self.status == "stopped" or (self.error or {}).get("type") == TaskTerminated.__name__


@dataclass
class TaskStart(_Record):
    """What a task attempt writes as it starts, before its step runs: since when, which foreach
    item, where. One small PUT per attempt, never read back by the task; it lets a viewer show a
    task still running (also one that has printed nothing) before its record lands. The record,
    not this, says how the attempt ended."""

    flow: str
    run_id: str
    step: str
    task_id: str
    attempt: int = 0
    started_at: float = 0.0
    foreach_stack: list[Frame] = field(default_factory=list)
    backend: str = "local"
    host: str | None = None  # the machine (or container) it runs on, and its pid there
    pid: int | None = None
    job_id: str | None = None  # the remote job (Batch job id, Kubernetes pod name)

    def __post_init__(self) -> None:
        self.foreach_stack = frames(self.foreach_stack)

    @classmethod
    def of(cls, record: TaskRecord) -> TaskStart:
        """The marker of the attempt `record` (not yet written) will end."""
        return cls(
            record.flow,
            record.run_id,
            record.step,
            record.task_id,
            record.attempt,
            record.started_at,
            record.foreach_stack,
            record.backend,
            socket.gethostname(),
            record.pid,
            record.job_id,
        )

    def belongs_to(self, step: str, task_id: str, attempt: int) -> bool:
        """A marker found under another task's key (a copied folder) does not speak for it."""
        return (self.step, self.task_id, self.attempt) == (step, task_id, attempt)


@dataclass
class RunRecord(_Record):
    flow: str
    run_id: str
    status: RunStatus = "running"
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
    host: str | None = None  # where the scheduler runs, and its pid: on that host a run whose
    pid: int | None = None  # scheduler is gone shows dead at once, without waiting on the heartbeat
    tasks_stopped: int = 0  # stopped by the engine once the run was failing or cancelled
    system_tags: list[str] = field(default_factory=list)  # project:<name>, project_branch:<b>
    triggers: dict[str, Any] = field(default_factory=dict)  # @schedule/@trigger*: recorded only
    code: dict[str, Any] = field(default_factory=dict)  # the flow file: path, blob digest, size

    @property
    def pathspec(self) -> str:
        return f"{self.flow}/{self.run_id}"

    def liveness(self, now: float) -> RunLiveness:
        """The status, except that a 'running' run whose heartbeat stopped is 'dead'."""
        if self.status == "running" and now - self.heartbeat_at > HEARTBEAT_STALE:
            return "dead"
        if self.status == "running" and self.pid and self.host == socket.gethostname():
            try:
                os.kill(self.pid, 0)
            except ProcessLookupError:
                return "dead"
            except PermissionError:
                pass  # someone else's process: alive
        return self.status
