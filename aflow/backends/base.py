"""The backend protocol: run one task attempt somewhere and say how it ended.

`run(task, logs)` lasts as long as the task; cancelling it stops the task. The backend streams the
task's output lines to `logs` and returns the exit; what the task produced is read from the store by
the scheduler, never from the backend. A backend is an async context manager so it can hold shared
machinery (a warm parent process, a job poller) for the length of a run.
"""

from __future__ import annotations

import contextlib
import dataclasses
from dataclasses import dataclass, field
from types import TracebackType
from typing import Any, Protocol, Self

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


class LogSink(Protocol):
    async def line(self, stream: str, text: str) -> None:
        """One line of the task's output, without its newline; stream is stdout or stderr."""
        ...


class Backend(Protocol):
    name: str

    async def __aenter__(self) -> Backend: ...

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None: ...

    async def run(self, task: TaskSpec, logs: LogSink) -> TaskExit: ...


class BackendBase:
    """A backend's async context, written once: entering runs `_start(stack)`, where a backend
    starts what it holds for the run and pushes how to stop it onto `stack`; leaving unwinds the
    stack (also when `_start` fails halfway). A backend that holds nothing overrides nothing."""

    name = "backend"
    _running: contextlib.AsyncExitStack | None = None  # while entered: how to stop what it started

    async def _start(self, stack: contextlib.AsyncExitStack) -> None:
        pass

    async def __aenter__(self) -> Self:
        async with contextlib.AsyncExitStack() as stack:
            await self._start(stack)
            self._running = stack.pop_all()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        running, self._running = self._running, None
        if running is not None:
            await running.__aexit__(exc_type, exc, tb)
