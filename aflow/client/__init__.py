"""The client API: read runs, tasks and artifacts back (`Run`, `Step`, `Task`), synchronously.

The classes here are thin synchronous faces over `aflow.client.core`; their store calls run on one
background event loop thread shared by the process, so they also work when called from code that is
itself inside an event loop (a notebook, a web handler).
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Coroutine, Iterator
from typing import Any, TypeVar

import anyio
from anyio.from_thread import BlockingPortal

from aflow.client.core import AsyncRun, AsyncTask
from aflow.exception import AflowException
from aflow.stores.base import open_store

T = TypeVar("T")
_portal: BlockingPortal | None = None
_portal_lock = threading.Lock()


def _call(fn: Callable[..., Coroutine[Any, Any, T]], *args: Any) -> T:
    global _portal
    with _portal_lock:
        if _portal is None:
            ready = threading.Event()
            box: list[BlockingPortal] = []

            async def serve() -> None:
                async with BlockingPortal() as portal:
                    box.append(portal)
                    ready.set()
                    await portal.sleep_until_stopped()

            threading.Thread(target=anyio.run, args=(serve,), daemon=True, name="aflow-client").start()
            ready.wait()
            _portal = box[0]
    return _portal.call(fn, *args)


class DataArtifacts:
    """`task.data.<name>`: each artifact fetched on first access."""

    def __init__(self, task: AsyncTask) -> None:
        self._task = task
        self._cache: dict[str, Any] = {}

    def __getattr__(self, name: str) -> Any:
        if name.startswith("__"):
            raise AttributeError(name)
        if name not in self._cache:
            self._cache[name] = _call(self._task.artifact, name)
        return self._cache[name]

    def __contains__(self, name: str) -> bool:
        return name in _call(self._task.artifact_names)

    def __dir__(self) -> list[str]:
        return _call(self._task.artifact_names)

    def __repr__(self) -> str:
        return f"<data of {self._task.pathspec}: {', '.join(dir(self))}>"


class Task:
    def __init__(self, core: AsyncTask) -> None:
        self._core = core
        self.id = core.id
        self.pathspec = core.pathspec

    @property
    def data(self) -> DataArtifacts:
        return DataArtifacts(self._core)

    @property
    def successful(self) -> bool:
        return _call(self._core.record).ok

    @property
    def index(self) -> int | None:
        stack = _call(self._core.record).foreach_stack
        return stack[-1][1] if stack else None

    def __repr__(self) -> str:
        return f"Task('{self.pathspec}')"


class Step:
    def __init__(self, run: AsyncRun, name: str) -> None:
        self._run = run
        self.id = name
        self.pathspec = f"{run.pathspec}/{name}"

    def __iter__(self) -> Iterator[Task]:
        for task_id in _call(self._run.task_ids, self.id):
            yield Task(self._run.task(self.id, task_id))

    @property
    def task(self) -> Task | None:
        return next(iter(self), None)

    def __repr__(self) -> str:
        return f"Step('{self.pathspec}')"


class Run:
    """A run of a flow: `Run("Flow/run_id")`, or what `run_flow()` returns."""

    def __init__(self, pathspec: str, datastore: str = "local", datastore_root: str | None = None):
        flow, run_id = pathspec.split("/")
        self._core = AsyncRun(open_store(datastore, datastore_root), flow, run_id)

    @classmethod
    def _of(cls, core: AsyncRun) -> Run:
        run = cls.__new__(cls)
        run._core = core
        return run

    @property
    def id(self) -> str:
        return self._core.id

    @property
    def pathspec(self) -> str:
        return self._core.pathspec

    @property
    def status(self) -> str:
        return _call(self._core.record).status

    @property
    def successful(self) -> bool:
        return self.status == "done"

    @property
    def finished(self) -> bool:
        return self.status != "running"

    @property
    def error(self) -> str | None:
        err = _call(self._core.record).error
        return err.get("message") if err else None

    @property
    def end_task(self) -> Task | None:
        core = _call(self._core.end_task)
        return Task(core) if core else None

    @property
    def data(self) -> DataArtifacts:
        """The end step's artifacts; an error naming why when the run did not reach its end."""
        end = self.end_task
        if end is None:
            why = f": {self.error}" if self.error else ""
            raise AflowException(f"run {self.pathspec} has no end step data ({self.status}{why})")
        return end.data

    def __getitem__(self, step: str) -> Step:
        return Step(self._core, step)

    def __repr__(self) -> str:
        return f"Run('{self.pathspec}')"


__all__ = ["DataArtifacts", "Run", "Step", "Task"]
