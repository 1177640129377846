"""A backend that runs no code: a handler decides how each task attempt ends (httpx's MockTransport,
for tasks), so the scheduler's rules can be tested in-process, without forking, in milliseconds.

The handler gets the attempt's TaskSpec and returns an outcome (or raises, as a backend may):
- `Done(artifacts, num_splits, lines)`: the task printed `lines` and committed a done record with
  those artifacts (and that foreach width, for a foreach step);
- `Failed(error)`: the step raised `error`: a failed record names it, as the task runtime writes
  (a `TaskTerminated` makes it a stopped record, as a SIGTERM'd task's is: the platform's doing);
- `Lost(reason)`: the task's process or job vanished without a record (killed, evicted);
- `Hang()`: the task runs until it is cancelled (@timeout, a sibling's failure, the user).
Every attempt is kept in `attempts`, with how it ended, for tests to read. The records are written
to the store given here, which must be the run's store (usually a `MemoryStore`).
"""

from __future__ import annotations

import inspect
import time
import traceback
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

import anyio

from aflow.backends.base import BackendBase, LogSink
from aflow.engine.wire import TaskExit, TaskSpec
from aflow.exception import TaskTerminated
from aflow.stores.base import ObjectStore
from aflow.stores.records import TaskRecord, task_record_key
from aflow.stores.values import save_values


@dataclass(frozen=True)
class Done:
    artifacts: Mapping[str, Any] = field(default_factory=dict)
    num_splits: int | None = None
    lines: Sequence[str] = ()


@dataclass(frozen=True)
class Failed:
    error: BaseException


@dataclass(frozen=True)
class Lost:
    reason: str = "the task's process was killed by signal 9 (SIGKILL)"
    returncode: int = -9


@dataclass(frozen=True)
class Hang:
    pass


Outcome = Done | Failed | Lost | Hang
Handler = Callable[[TaskSpec], Outcome | Awaitable[Outcome]]
Ending = Literal["done", "failed", "lost", "cancelled", "raised"]


@dataclass
class Attempt:
    """One call of the backend: the spec it got and how it ended (None while it runs)."""

    spec: TaskSpec
    ended: Ending | None = None

    @property
    def step(self) -> str:
        return self.spec.step


def _all_done(task: TaskSpec) -> Outcome:
    return Done()


class MockBackend(BackendBase):
    """Ends each attempt as `handler(spec)` says; by default every task is done with no artifacts."""

    name = "mock"

    def __init__(self, store: ObjectStore, handler: Handler = _all_done) -> None:
        self.store = store
        self.handler = handler
        self.attempts: list[Attempt] = []
        self.running = 0
        self.most_running = 0  # how many attempts ran at once, at most

    def ended(self, step: str, how: Ending) -> list[Attempt]:
        """The attempts of `step` that ended `how`."""
        return [a for a in self.attempts if a.step == step and a.ended == how]

    async def run(self, task: TaskSpec, logs: LogSink) -> TaskExit:
        attempt = Attempt(task)
        self.attempts.append(attempt)
        self.running += 1
        self.most_running = max(self.most_running, self.running)
        try:
            outcome = self.handler(task)
            if inspect.isawaitable(outcome):
                outcome = await outcome
            attempt.ended, exit = await self._end(task, logs, outcome)
            return exit
        except anyio.get_cancelled_exc_class():
            attempt.ended = "cancelled"
            raise
        except BaseException:
            attempt.ended = "raised"
            raise
        finally:
            self.running -= 1

    async def _end(self, task: TaskSpec, logs: LogSink, outcome: Outcome) -> tuple[Ending, TaskExit]:
        record = TaskRecord.for_spec(task, started_at=time.time(), backend=self.name)
        key = task_record_key(task.flow_name, task.run_id, task.step, task.task_id, task.attempt)
        match outcome:
            case Done(artifacts, num_splits, lines):
                for line in lines:
                    await logs.line("stdout", line)
                record.artifacts = {**task.initial_artifacts}
                record.artifacts.update(await save_values(self.store, task.flow_name, artifacts))
                record.num_splits = num_splits
                record.finished_at = time.time()
                await self.store.put(key, [record.pack()])
                return "done", TaskExit(0)
            case Failed(error):
                shown = "".join(traceback.format_exception(error))
                await logs.line("stderr", f"Step '{task.step}' failed ({task.pathspec}):")
                record.status = "stopped" if isinstance(error, TaskTerminated) else "failed"
                record.finished_at = time.time()
                record.error = {"type": type(error).__name__, "message": str(error), "traceback": shown}
                await self.store.put(key, [record.pack()])
                return "failed", TaskExit(1)
            case Lost(reason, returncode):
                return "lost", TaskExit(returncode, reason)
            case Hang():
                await anyio.sleep_forever()
        raise TypeError(f"the mock backend's handler returned {outcome!r}, not an outcome")
