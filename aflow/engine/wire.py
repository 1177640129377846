"""The wire types between the scheduler, the backends and the task runtime: `TaskSpec` (what one
attempt of one task is, packed with msgpack to cross a process or a container) and `TaskExit` (how its
process ended). They hold no artifacts and know nothing of where a task runs.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any

import msgpack

from aflow.frames import Frame, frames


@dataclass
class TaskSpec:
    """Everything a task runtime needs to run one attempt of one task: small, never artifacts."""

    flow_name: str
    flow_module: str
    flow_file: str
    run_id: str
    step: str
    task_id: str
    datastore: str
    store_root: str
    attempt: int = 0
    sys_path: list[str] = field(default_factory=list)
    parents: list[str] = field(default_factory=list)  # "step/task_id/attempt" within the run
    parents_manifest: str | None = None  # digest of a msgpack list, for wide joins
    foreach_stack: list[Frame] = field(default_factory=list)
    initial_artifacts: dict[str, Any] = field(default_factory=dict)
    param_names: list[str] = field(default_factory=list)
    decorators: dict[str, dict[str, Any]] = field(default_factory=dict)  # this step's, by name
    fallback: dict[str, Any] | None = None  # @catch: record the error instead of running the step
    tags: list[str] = field(default_factory=list)
    origin_run_id: str | None = None
    environment: dict[str, str] | None = None  # @pypi/@conda: key, kind, python, lock_key
    current: dict[str, Any] = field(default_factory=dict)  # more of `current` (@project's)

    @property
    def pathspec(self) -> str:
        return f"{self.flow_name}/{self.run_id}/{self.step}/{self.task_id}"

    def pack(self) -> bytes:
        return msgpack.packb(
            {f.name: getattr(self, f.name) for f in dataclasses.fields(self)}, use_bin_type=True
        )

    def __post_init__(self) -> None:
        self.foreach_stack = frames(self.foreach_stack)  # msgpack gives lists back

    @classmethod
    def unpack(cls, data: bytes) -> TaskSpec:
        return cls(**msgpack.unpackb(data, raw=False))


@dataclass(frozen=True)
class TaskExit:
    """How the task's process ended: 0 is success; `reason` says why not, in words."""

    returncode: int
    reason: str | None = None
