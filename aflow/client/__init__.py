"""The client API, as in Metaflow: `Flow`, `Run`, `Step`, `Task`, `DataArtifact`, `namespace`.

The synchronous classes here are thin faces over the async core (`aflow.client.core`: `AsyncFlow`,
`AsyncRun`, `AsyncStep`, `AsyncTask`, `AsyncDataArtifact`); each property is one awaited core call run
on the client's background loop thread (`aflow.client.portal`), so these also work from inside an
event loop. Reads are lazy: nothing is loaded until it is asked for, and an artifact's value only when
`.data` is read. This module holds no store logic of its own.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from datetime import datetime
from typing import TYPE_CHECKING, Any, Generic, Protocol, Self, TypeVar

from aflow.client import lineage
from aflow.client.core import (
    AsyncDataArtifact,
    AsyncFlow,
    AsyncRun,
    AsyncStep,
    AsyncTask,
    LogLine,
    TaskException,
    default_namespace,
    get_metadata,
    get_namespace,
    metadata,
    namespace,
    pages,
    split_pathspec,
    system_tags,
    timestamp,
)
from aflow.client.lineage import Metadata
from aflow.client.portal import call
from aflow.exception import NamespaceMismatch, StepNotFound, TaskNotFound
from aflow.frames import Frame
from aflow.stores.records import RunLiveness

if TYPE_CHECKING:
    from aflow.client.code import RunCode


class TimedLine(tuple[datetime | None, str | bytes]):
    """One saved output line: unpacks as `(datetime, text)` (Metaflow's loglines), and has
    `.time`, `.text` and `.stream`."""

    stream: str

    def __new__(cls, time: datetime | None, text: str | bytes, stream: str) -> TimedLine:
        line = super().__new__(cls, (time, text))
        line.stream = stream
        return line

    @property
    def time(self) -> datetime | None:
        return self[0]

    @property
    def text(self) -> str | bytes:
        return self[1]


class _Core(Protocol):
    """What every async core a sync class wraps has."""

    @property
    def id(self) -> str: ...

    @property
    def pathspec(self) -> str: ...


CoreT = TypeVar("CoreT", bound=_Core)


class _Facade(Generic[CoreT]):
    _core: CoreT

    @classmethod
    def _of(cls, core: CoreT) -> Self:
        obj = cls.__new__(cls)
        obj._core = core
        return obj

    @property
    def id(self) -> str:
        return self._core.id

    @property
    def pathspec(self) -> str:
        return self._core.pathspec

    @property
    def path_components(self) -> list[str]:
        """The pathspec's parts: [flow, run_id, step, task_id] for a task."""
        return self.pathspec.split("/")

    def __repr__(self) -> str:
        return f"{type(self).__name__}('{self.pathspec}')"

    def __eq__(self, other: object) -> bool:
        return (
            isinstance(other, _Facade)
            and type(other) is type(self)
            and other.pathspec == self.pathspec
        )

    def __hash__(self) -> int:
        return hash((type(self).__name__, self.pathspec))


class DataArtifact(_Facade[AsyncDataArtifact]):
    """One artifact: `.data` (loaded now), `.size` and `.sha` (from the record, nothing loaded)."""

    _core: AsyncDataArtifact

    def __init__(
        self, pathspec: str, *, datastore: str | None = None, datastore_root: str | None = None
    ):
        task, _, name = pathspec.rpartition("/")
        core = call(AsyncTask.get, task, datastore=datastore, datastore_root=datastore_root)
        self._core = call(core.data_artifact, name)

    @property
    def data(self) -> Any:
        return call(self._core.data)

    @property
    def parent(self) -> Task:
        return Task._of(self._core.task)

    @property
    def size(self) -> int:
        return self._core.size

    @property
    def sha(self) -> str:
        return self._core.sha


class DataArtifacts:
    """`task.data.<name>`: each artifact's value fetched on first access (Metaflow's MetaflowData)."""

    def __init__(self, task: AsyncTask) -> None:
        self._task = task
        self._cache: dict[str, Any] = {}

    def __getattr__(self, name: str) -> Any:
        if name.startswith("__"):
            raise AttributeError(name)
        if name not in self._cache:
            self._cache[name] = call(self._task.artifact, name)
        return self._cache[name]

    def __contains__(self, name: str) -> bool:
        return name in call(self._task.artifact_refs)

    def __dir__(self) -> list[str]:
        return call(self._task.artifact_names)

    def __repr__(self) -> str:
        return f"<data of {self._task.pathspec}: {', '.join(dir(self))}>"


class Artifacts:
    """`task.artifacts`: every DataArtifact, by attribute or by iteration (no value loaded)."""

    def __init__(self, items: list[AsyncDataArtifact]) -> None:
        self._items = {a.name: DataArtifact._of(a) for a in items}

    def __getattr__(self, name: str) -> DataArtifact:
        try:
            return self._items[name]
        except KeyError:
            raise AttributeError(name) from None

    def __iter__(self) -> Iterator[DataArtifact]:
        return iter(self._items.values())

    def __len__(self) -> int:
        return len(self._items)

    def __contains__(self, name: str) -> bool:
        return name in self._items

    def __dir__(self) -> list[str]:
        return list(self._items)


class Task(_Facade[AsyncTask]):
    """A task: `Task("Flow/run_id/step/task_id")`, its artifacts, output and outcome."""

    _core: AsyncTask

    def __init__(
        self,
        pathspec: str,
        *,
        attempt: int | None = None,
        datastore: str | None = None,
        datastore_root: str | None = None,
        _namespace_check: bool = True,
    ) -> None:
        self._core = call(
            AsyncTask.get, pathspec, attempt=attempt, datastore=datastore,
            datastore_root=datastore_root, namespace_check=_namespace_check,
        )  # fmt: skip

    @property
    def parent(self) -> Step:
        core = self._core
        return Step._of(AsyncStep(AsyncRun(core.store, core.flow, core.run_id), core.step))

    @property
    def parent_tasks(self) -> Iterator[Task]:
        """The tasks this one ran after (for a join: one per branch)."""
        for pathspec in call(lineage.parent_pathspecs, self._core):
            yield self._sibling(pathspec)

    @property
    def child_tasks(self) -> Iterator[Task]:
        """The tasks that ran after this one."""
        for pathspec in call(lineage.child_pathspecs, self._core):
            yield self._sibling(pathspec)

    def _sibling(self, pathspec: str) -> Task:
        _flow, run_id, step, task_id = pathspec.split("/")
        return Task._of(AsyncTask(self._core.store, self._core.flow, run_id, step, task_id))

    @property
    def metadata(self) -> list[Metadata]:
        """Metaflow's metadata entries (attempt, origin-run-id, python_version, ...), one set per
        attempt unless the task was read at one attempt."""
        return [m._replace(task=self) for m in call(lineage.task_metadata, self._core)]

    @property
    def metadata_dict(self) -> dict[str, str]:
        """Each metadata name's latest value."""
        return {m.name: m.value for m in sorted(self.metadata, key=lambda m: m.created_at)}

    @property
    def origin_pathspec(self) -> str | None:
        """The task of the origin run that a resume reused for this one, else None."""
        record = call(self._core.record_or_none)
        return record.cloned_from if record else None

    @property
    def data(self) -> DataArtifacts:
        return DataArtifacts(self._core)

    @property
    def artifacts(self) -> Artifacts:
        return Artifacts(call(self._core.artifacts))

    def __getitem__(self, name: str) -> DataArtifact:
        try:
            return DataArtifact._of(call(self._core.data_artifact, name))
        except AttributeError as e:
            raise KeyError(str(e)) from None

    def __contains__(self, name: str) -> bool:
        return name in call(self._core.artifact_refs)

    def __iter__(self) -> Iterator[DataArtifact]:
        return iter(self.artifacts)

    @property
    def finished(self) -> bool:
        """The task ended for good: done, or failed with no retry (or @catch) still to come."""
        return call(self._core.finished)

    @property
    def successful(self) -> bool:
        record = call(self._core.record_or_none)
        return record is not None and record.ok

    @property
    def exception(self) -> TaskException | None:
        """Why it failed (TaskException: type, message, traceback), or None."""
        return call(self._core.exception)

    @property
    def foreach_stack(self) -> list[Frame]:
        """The enclosing foreaches, outermost first: the engine's Frame (step, index, num_splits,
        items digest) for each."""
        return call(self._core.foreach_stack)

    @property
    def index(self) -> int | None:
        """The index in the innermost enclosing foreach, or None outside any foreach."""
        stack = self.foreach_stack
        return stack[-1].index if stack else None

    @property
    def stdout(self) -> str:
        return call(self._core.output, "stdout")

    @property
    def stderr(self) -> str:
        return call(self._core.output, "stderr")

    def loglines(self, stream: str | None = None, as_unicode: bool = True) -> Iterator[TimedLine]:
        """`(datetime, text)` for each saved line of `stream` ("stdout" or "stderr"; both if None),
        as Metaflow yields them; each also has `.stream` and `.text`."""
        for line in call(self._core.log, stream):
            text = line.text if as_unicode else line.text.encode()
            yield TimedLine(line.time, text, line.stream)

    @property
    def current_attempt(self) -> int | None:
        attempts = call(self._core.attempts)
        if self._core.attempt is not None:
            return self._core.attempt
        return attempts[-1] if attempts else None

    @property
    def created_at(self) -> datetime | None:
        record = call(self._core.record_or_none)
        return timestamp(record.started_at) if record else None

    @property
    def finished_at(self) -> datetime | None:
        record = call(self._core.record_or_none)
        return timestamp(record.finished_at) if record else None

    @property
    def backend(self) -> str | None:
        """Where the task ran: "local", "batch" or "kubernetes"."""
        record = call(self._core.record_or_none)
        return record.backend if record else None

    @property
    def job_id(self) -> str | None:
        """The remote job that ran it (AWS Batch job id, Kubernetes pod name), if remote."""
        record = call(self._core.record_or_none)
        return record.job_id if record else None


class Step(_Facade[AsyncStep]):
    """A step of a run: `run["name"]` or `Step("Flow/run_id/step")`; iterates its tasks."""

    _core: AsyncStep

    def __init__(
        self,
        pathspec: str,
        *,
        datastore: str | None = None,
        datastore_root: str | None = None,
        _namespace_check: bool = True,
    ):
        flow, run_id, name = split_pathspec(pathspec, 3, "Flow/run_id/step")
        run = call(AsyncRun.get, f"{flow}/{run_id}", datastore=datastore,
                   datastore_root=datastore_root, namespace_check=_namespace_check)  # fmt: skip
        self._core = call(run.step, name)

    @property
    def parent(self) -> Run:
        return Run._of(self._core.run)

    def _steps(self, names: list[str]) -> Iterator[Step]:
        for name in names:
            yield Step._of(AsyncStep(self._core.run, name))

    @property
    def child_steps(self) -> Iterator[Step]:
        """The steps that come after this one in the graph."""
        graph = call(self._core.run.record).graph
        return self._steps(lineage.next_steps(graph, self._core.name))

    @property
    def parent_steps(self) -> Iterator[Step]:
        """The steps that come before this one in the graph."""
        graph = call(self._core.run.record).graph
        return self._steps(lineage.previous_steps(graph, self._core.name))

    @property
    def origin_pathspec(self) -> str | None:
        """This step in the run a resume started from, else None."""
        origin = self.parent.origin_pathspec
        return f"{origin}/{self.id}" if origin else None

    def tasks(self) -> Iterator[Task]:
        for core in call(self._core.tasks):
            yield Task._of(core)

    def __iter__(self) -> Iterator[Task]:
        return self.tasks()

    def __getitem__(self, task_id: str) -> Task:
        return Task._of(call(self._core.task, task_id))

    @property
    def task(self) -> Task | None:
        """The step's first task (the only one, outside a foreach)."""
        core = call(self._core.task)
        return Task._of(core) if core else None


class Run(_Facade[AsyncRun]):
    """A run of a flow: `Run("Flow/run_id")`, or what `run_flow()` returns."""

    _core: AsyncRun

    def __init__(
        self,
        pathspec: str,
        datastore: str | None = None,
        datastore_root: str | None = None,
        _namespace_check: bool = True,
    ):
        self._core = call(AsyncRun.get, pathspec, datastore=datastore,
                          datastore_root=datastore_root, namespace_check=_namespace_check)  # fmt: skip

    @property
    def parent(self) -> Flow:
        return Flow._of(AsyncFlow(self._core.flow, store=self._core.store))

    @property
    def origin_pathspec(self) -> str | None:
        """The run this one resumed (`Flow/run_id`), else None."""
        origin = self.origin_run_id
        return f"{self._core.flow}/{origin}" if origin else None

    @property
    def status(self) -> RunLiveness:
        """done | failed | cancelled | running, or dead (running, but its heartbeat stopped)."""
        return call(self._core.status)

    @property
    def successful(self) -> bool:
        return self.status == "done"

    @property
    def finished(self) -> bool:
        """The run ended and said so (done, failed or cancelled); a dead run never finished."""
        return self.status in ("done", "failed", "cancelled")

    @property
    def error(self) -> str | None:
        err = call(self._core.live_record).error
        return err.get("message") if err else None

    @property
    def created_at(self) -> datetime | None:
        return timestamp(call(self._core.record).started_at)

    @property
    def finished_at(self) -> datetime | None:
        return timestamp(call(self._core.live_record).finished_at)

    @property
    def user(self) -> str | None:
        return call(self._core.record).user

    @property
    def tags(self) -> frozenset[str]:
        """The user tags (given at run time or added since) and the system tags (`user:<name>`)."""
        return self.user_tags | self.system_tags

    @property
    def user_tags(self) -> frozenset[str]:
        from aflow.client.tags import changed_tags

        record = call(self._core.record)
        if record.status != "running":  # an ended run's record has every change: no extra read
            return frozenset(record.tags)
        changed = call(changed_tags, self._core.store, self._core.flow, self._core.id)
        return frozenset(record.tags if changed is None else changed)

    def add_tag(self, tag: str) -> None:
        """Tag the run (also from inside one of its steps)."""
        self.add_tags([tag])

    def add_tags(self, tags: Iterable[str]) -> None:
        from aflow.client.tags import change_tags

        call(change_tags, self._core, list(tags), [])

    def remove_tag(self, tag: str) -> None:
        """Remove a user tag (system tags, like `user:<name>`, stay)."""
        self.remove_tags([tag])

    def remove_tags(self, tags: Iterable[str]) -> None:
        from aflow.client.tags import change_tags

        call(change_tags, self._core, [], list(tags))

    def replace_tag(self, tag_to_remove: str, tag_to_add: str) -> None:
        """Remove one user tag and add another, in one change."""
        self.replace_tags([tag_to_remove], [tag_to_add])

    def replace_tags(self, tags_to_remove: Iterable[str], tags_to_add: Iterable[str]) -> None:
        from aflow.client.tags import change_tags

        call(change_tags, self._core, list(tags_to_add), list(tags_to_remove))

    @property
    def code(self) -> RunCode | None:
        """The flow's source as this run ran it (Metaflow's MetaflowCode), or None for a run
        made before aflow kept it."""
        from aflow.client.code import load_code

        return call(load_code, self._core)

    @property
    def system_tags(self) -> frozenset[str]:
        return system_tags(call(self._core.record))

    @property
    def origin_run_id(self) -> str | None:
        return call(self._core.record).origin_run_id

    @property
    def end_task(self) -> Task | None:
        core = call(self._core.end_task)
        return Task._of(core) if core else None

    @property
    def data(self) -> DataArtifacts:
        """The end step's artifacts; an error naming why when the run did not reach its end."""
        return DataArtifacts(call(self._core.data_task))

    def steps(self) -> Iterator[Step]:
        """The steps that ran, newest first (as Metaflow iterates them)."""
        for core in reversed(call(self._core.steps)):
            yield Step._of(core)

    def __iter__(self) -> Iterator[Step]:
        return self.steps()

    def __getitem__(self, step: str) -> Step:
        return Step._of(call(self._core.step, step))

    def __contains__(self, step: str) -> bool:
        return step in call(self._core.step_names)


class Flow(_Facade[AsyncFlow]):
    """A flow with runs in the store, by name (AflowNotFound otherwise): its runs, newest first."""

    _core: AsyncFlow

    def __init__(
        self,
        name: str,
        *,
        datastore: str | None = None,
        datastore_root: str | None = None,
        _namespace_check: bool = True,
    ):
        core = AsyncFlow(name, datastore=datastore, datastore_root=datastore_root)
        self._core = call(core.check_exists)

    parent = None
    origin_pathspec = None

    @classmethod
    def list(cls, *, datastore: str | None = None, datastore_root: str | None = None) -> list[Flow]:
        """Every flow in the store."""
        flows = call(AsyncFlow.list, datastore=datastore, datastore_root=datastore_root)
        return [cls._of(f) for f in flows]

    def runs(self, *tags: str) -> Iterator[Run]:
        """Runs carrying every tag given (and the namespace's), newest first; reads only run records."""
        for page in pages(call(self._core.run_ids)):
            for core in call(self._core.load_runs, page, tags):
                yield Run._of(core)

    def __iter__(self) -> Iterator[Run]:
        return self.runs()

    def __getitem__(self, run_id: str) -> Run:
        core = call(self._core.run, run_id)
        call(core.check_namespace)
        return Run._of(core)

    @property
    def latest_run(self) -> Run | None:
        core = call(self._core.latest_run)
        return Run._of(core) if core else None

    @property
    def latest_successful_run(self) -> Run | None:
        core = call(self._core.latest_successful_run)
        return Run._of(core) if core else None


class Metaflow:
    """Metaflow's entry point to the client: `Metaflow().flows`, every flow in the store that has
    a run in the current namespace."""

    def __init__(self, *, datastore: str | None = None, datastore_root: str | None = None):
        self._datastore, self._root = datastore, datastore_root

    @property
    def flows(self) -> list[Flow]:
        found = Flow.list(datastore=self._datastore, datastore_root=self._root)
        return [f for f in found if next(f.runs(), None) is not None]

    def __iter__(self) -> Iterator[Flow]:
        return iter(self.flows)

    def __str__(self) -> str:
        return "Metaflow()"

__all__ = [
    "Artifacts",
    "AsyncDataArtifact",
    "AsyncFlow",
    "AsyncRun",
    "AsyncStep",
    "AsyncTask",
    "DataArtifact",
    "DataArtifacts",
    "Flow",
    "Frame",
    "LogLine",
    "Metadata",
    "Metaflow",
    "NamespaceMismatch",
    "Run",
    "Step",
    "StepNotFound",
    "Task",
    "TaskException",
    "TaskNotFound",
    "TimedLine",
    "default_namespace",
    "get_metadata",
    "get_namespace",
    "metadata",
    "namespace",
]
