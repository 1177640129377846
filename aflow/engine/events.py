"""The one stream of everything a user sees while a run goes: task state, log lines, the outcome.

The scheduler emits; the CLI and `start_flow()` consumers read. Events are small frozen dataclasses;
a reader that falls behind makes the buffer grow rather than stall the run.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import anyio
from anyio.streams.memory import MemoryObjectReceiveStream, MemoryObjectSendStream


@dataclass(frozen=True)
class RunStarted:
    flow: str
    run_id: str
    datastore: str
    origin_run_id: str | None = None  # set when the run resumes another


@dataclass(frozen=True)
class TaskStarted:
    pathspec: str
    attempt: int
    fallback: bool = False  # @catch recording a failure, not running the step


@dataclass(frozen=True)
class TaskFinished:
    pathspec: str
    attempt: int
    seconds: float
    cloned: bool = False  # reused from the origin run of a resume


@dataclass(frozen=True)
class TaskFailed:
    pathspec: str
    attempt: int
    message: str
    traceback: str | None
    retrying: bool = False
    retry_in: float = 0.0  # seconds until the next attempt starts (remote steps wait; local don't)


@dataclass(frozen=True)
class TaskStopped:
    """The engine stopped the task because the run was failing or cancelled: not a failure."""

    pathspec: str
    attempt: int


@dataclass(frozen=True)
class ForeachStarted:
    """A foreach fanned out: `width` tasks of each step in `body` are on their way."""

    pathspec: str  # the split task
    width: int
    body: tuple[str, ...]  # the steps run once per item (this foreach level, not nested ones)


@dataclass(frozen=True)
class OutputLine:
    """One line a task printed (the client's `LogLine` is a saved line read back from the store)."""

    pathspec: str
    stream: str  # stdout | stderr
    line: str
    timestamp: float


@dataclass(frozen=True)
class RunFinished:
    flow: str
    run_id: str
    status: str  # done | failed | cancelled
    error: str | None = None
    tasks_done: int = 0
    tasks_failed: int = 0
    tasks_stopped: int = 0


Event = (
    RunStarted
    | TaskStarted
    | TaskFinished
    | TaskFailed
    | TaskStopped
    | ForeachStarted
    | OutputLine
    | RunFinished
)


class EventBus:
    """Fan-out of events to every subscriber, in order."""

    def __init__(self) -> None:
        self._subscribers: list[MemoryObjectSendStream[Event]] = []

    def subscribe(self) -> MemoryObjectReceiveStream[Event]:
        send, receive = anyio.create_memory_object_stream[Event](max_buffer_size=math.inf)
        self._subscribers.append(send)
        return receive

    def emit(self, event: Event) -> None:
        for s in list(self._subscribers):
            try:
                s.send_nowait(event)
            except (anyio.BrokenResourceError, anyio.ClosedResourceError):
                self._subscribers.remove(s)

    def close(self) -> None:
        for s in self._subscribers:
            s.close()
        self._subscribers.clear()
