"""The backend protocol: run one task attempt somewhere and say how it ended.

`run(task, logs)` lasts as long as the task; cancelling it stops the task. The backend streams the
task's output lines to `logs` and returns the exit; what the task produced is read from the store by
the scheduler, never from the backend. A backend is an async context manager so it can hold shared
machinery (a warm parent process, a job poller) for the length of a run.
"""

from __future__ import annotations

import contextlib
from types import TracebackType
from typing import Protocol, Self

from aflow.engine.wire import TaskExit, TaskSpec


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
