"""The async core of the client API: flows, runs, steps, tasks and artifacts, read from the store.

Every read is lazy and as small as it can be: a flow lists its run ids (one listing), a run reads its
run record, a task its record, and an artifact's blob is fetched only when that artifact's value is
asked for, so listing a thousand runs never loads an artifact. Deserialising runs in a worker thread,
never on the event loop. The namespace (Metaflow's `user:<name>` filter) lives here too.
`aflow.client` wraps these classes in the synchronous ones users know from Metaflow; nothing here
imports the engine's scheduler or the CLI.
"""

from __future__ import annotations

import builtins
import contextlib
import functools
import getpass
import hashlib
import os
import time
import warnings
from collections.abc import AsyncIterator, Iterator, Sequence
from datetime import datetime
from typing import Any, NamedTuple, TypeVar, overload

import anyio
import anyio.to_thread

from aflow.exception import (
    AflowException,
    AflowNotFound,
    CaughtException,
    DamagedData,
    DamagedRecordWarning,
    NamespaceMismatch,
    StepNotFound,
    TaskNotFound,
)
from aflow.frames import Frame
from aflow.stores import artifacts as art
from aflow.stores.base import Buffer, NotFound, ObjectStore, store_path
from aflow.stores.factory import default_datastore, open_store
from aflow.stores.records import (
    RunLiveness,
    RunRecord,
    TaskRecord,
    run_prefix,
    run_record_key,
    task_log_key,
    task_prefix,
)
from aflow.stores.transfer import gather

T = TypeVar("T")


# -- errors ---------------------------------------------------------------------------------------


# -- namespace ------------------------------------------------------------------------------------

_UNSET: Any = object()
_namespace: str | None = _UNSET


def current_user() -> str | None:
    """Who is running: AFLOW_USER, else the login name (what run records say in `user`)."""
    try:
        return os.environ.get("AFLOW_USER") or getpass.getuser()
    except Exception:
        return None


def namespace(ns: str | None) -> str | None:
    """Restrict what `Flow(...).runs()` and `Run(...)` see to runs tagged `ns` (None: every run)."""
    global _namespace
    _namespace = ns
    return ns


def default_namespace() -> str | None:
    """Back to the default namespace, `user:<current user>`."""
    user = current_user()
    return namespace(f"user:{user}" if user else None)


def get_namespace() -> str | None:
    if _namespace is _UNSET:
        return default_namespace()
    return _namespace


def run_tags(record: RunRecord) -> frozenset[str]:
    """A run's tags: the ones given at run time plus the implicit `user:<name>`."""
    return frozenset(record.tags) | system_tags(record)


def system_tags(record: RunRecord) -> frozenset[str]:
    return frozenset([f"user:{record.user}"] if record.user else []) | frozenset(record.system_tags)


def _visible(record: RunRecord, tags: Sequence[str]) -> bool:
    have = run_tags(record)
    ns = get_namespace()
    return (ns is None or ns in have) and all(t in have for t in tags)


# -- helpers --------------------------------------------------------------------------------------


_client_stores: dict[tuple[str | None, str | None], ObjectStore] = {}


# What `metadata(...)` chose, or, inside a running task, the run's own store (task_runtime).
_chosen_store: tuple[str, str | None] | None = None

DATASTORES = ("local", "s3", "azure", "gcs")
_SCHEMES = {"s3://": "s3", "az://": "azure", "gs://": "gcs"}


def use_store(datastore: str, datastore_root: str | None) -> None:
    """Make (datastore, root) what the client reads when it is given neither."""
    global _chosen_store
    _chosen_store = (datastore, datastore_root)


def metadata(ms: str) -> str:
    """Metaflow's `metadata()`: point the client at another store and return `get_metadata()`.

    Takes `local@/path`, `s3@s3://bucket/prefix`, a datastore name (`local`, `s3`, ...), a store
    URL (`s3://bucket/prefix`) or a directory (its `.aflow` folder, if it has one, is the store).
    """
    kind, at, where = ms.partition("@")
    if not at:
        kind, where = ("", ms) if ms not in DATASTORES else (ms, "")
    if not kind:
        kind = next((k for scheme, k in _SCHEMES.items() if where.startswith(scheme)), "local")
    if kind not in DATASTORES:
        raise AflowException(f"metadata({ms!r}): no datastore '{kind}' (known: {', '.join(DATASTORES)})")
    if kind == "local" and where:
        where = os.path.abspath(os.path.expanduser(where))
        inner = os.path.join(where, ".aflow")
        if os.path.basename(where) != ".aflow" and os.path.isdir(inner):
            where = inner
    use_store(kind, where or None)
    return get_metadata()


def get_metadata() -> str:
    """Where the client reads runs from, as `datastore@root` (Metaflow's `get_metadata()`)."""
    return f"{_store_kind()}@{open_client_store().url}"


def _store_kind() -> str:
    return _chosen_store[0] if _chosen_store else default_datastore()


def open_client_store(
    datastore: str | None = None, datastore_root: str | None = None, store: ObjectStore | None = None
) -> ObjectStore:
    """The store to read: the one given, else `datastore_root`, else what `metadata()` chose (in
    a running task: the run's own store), else AFLOW_DATASTORE_ROOT or ./.aflow.

    One store per (datastore, root) for the whole process, so reading a hundred runs makes one
    cloud client, not a hundred; `close_client_stores()` lets go of them.
    """
    if store is not None:
        return store
    if datastore is None and datastore_root is None and _chosen_store is not None:
        datastore, datastore_root = _chosen_store
    key = (datastore or default_datastore(), datastore_root or _env_root(datastore))
    if key not in _client_stores:
        _client_stores[key] = open_store(datastore, datastore_root)
    return _client_stores[key]


def _env_root(datastore: str | None) -> str | None:
    name = datastore or default_datastore()
    return (
        os.environ.get("AFLOW_DATASTORE_ROOT")
        if name == "local"
        else os.environ.get(f"AFLOW_DATASTORE_SYSROOT_{name.upper()}")
    )


async def close_client_stores() -> None:
    """Close the clients the client API's stores made on this event loop."""
    for store in list(_client_stores.values()):
        with contextlib.suppress(Exception):
            await store.aclose()


def split_pathspec(pathspec: str, parts: int, shape: str) -> list[str]:
    pieces = pathspec.strip("/").split("/")
    if len(pieces) != parts or not all(pieces):
        raise AflowException(f"expected a pathspec like {shape}, got '{pathspec}'")
    return pieces


def timestamp(seconds: float | None) -> datetime | None:
    """A record's time (epoch seconds) as a local, timezone-aware datetime."""
    return datetime.fromtimestamp(seconds).astimezone() if seconds else None


def id_order(name: str) -> tuple[int, str]:
    """Run ids and task ids are integers as text: order them as numbers."""
    return (len(name), name)


def pages(items: Sequence[T], first: int = 8, largest: int = 256) -> Iterator[Sequence[T]]:
    """Consecutive slices of growing size: a reader that wants one item reads few records."""
    start, size = 0, first
    while start < len(items):
        yield items[start : start + size]
        start += size
        size = min(size * 4, largest)


def skip_damaged(damaged: list[DamagedData], e: DamagedData) -> None:
    """Skip a damaged record and go on, naming it: kept in `damaged` (what the CLI and the UI
    print) and warned about (what a script sees)."""
    damaged.append(e)
    warnings.warn(f"skipped a damaged record: {e}", DamagedRecordWarning, stacklevel=3)


async def _get_or_none(store: ObjectStore, key: str) -> Buffer | None:
    try:
        return await store.get(key)
    except NotFound:
        return None


# -- flows ----------------------------------------------------------------------------------------


class AsyncFlow:
    """A flow in the store, by name: `await AsyncFlow("Name").latest_run()`."""

    def __init__(
        self,
        name: str,
        *,
        datastore: str | None = None,
        datastore_root: str | None = None,
        store: ObjectStore | None = None,
    ) -> None:
        self.store = open_client_store(datastore, datastore_root, store)
        self.name = self.id = self.pathspec = name
        self.damaged: list[DamagedData] = []  # run records skipped while listing

    @classmethod
    async def list(
        cls,
        *,
        datastore: str | None = None,
        datastore_root: str | None = None,
        store: ObjectStore | None = None,
    ) -> list[AsyncFlow]:
        """Every flow with something in the store, by name."""
        store = open_client_store(datastore, datastore_root, store)
        return [cls(n, store=store) for n in await store.list("") if n.isidentifier()]

    # `list` below is the classmethod above: the builtin is spelled out.
    async def run_ids(self) -> builtins.list[str]:
        """Every run id in the store, newest first (one listing; no record read)."""
        names = await self.store.list(self.name)
        return sorted((n for n in names if n != "data" and "." not in n), key=id_order, reverse=True)

    async def exists(self) -> bool:
        return bool(await self.run_ids())

    async def check_exists(self) -> AsyncFlow:
        """Self, or AflowNotFound naming the flows the store has (or saying it is empty)."""
        if await self.exists():
            return self
        others = [f.name for f in await AsyncFlow.list(store=self.store)]
        if not others:
            raise AflowNotFound(
                f"the store {self.store.url} is empty: run a flow first (aflow run flow.py)"
            )
        raise AflowNotFound(
            f"no runs of {self.name} in {self.store.url} (flows there: {', '.join(others)})"
        )

    async def load_runs(
        self, run_ids: Sequence[str], tags: Sequence[str] = ()
    ) -> builtins.list[AsyncRun]:
        """The runs among `run_ids` that have a record and are in the namespace with every tag."""
        datas = await gather(
            [
                functools.partial(_get_or_none, self.store, run_record_key(self.name, i))
                for i in run_ids
            ]
        )
        found = []
        for i, d in zip(run_ids, datas, strict=True):
            if d is not None:
                path = store_path(self.store.url, run_record_key(self.name, i))
                try:
                    found.append((i, RunRecord.unpack(d, path)))
                except DamagedData as e:
                    skip_damaged(self.damaged, e)
        return [AsyncRun(self.store, self.name, i, r) for i, r in found if _visible(r, tags)]

    async def runs(self, *tags: str) -> AsyncIterator[AsyncRun]:
        """The runs in the current namespace carrying every tag given, newest first."""
        for page in pages(await self.run_ids()):
            for run in await self.load_runs(page, tags):
                yield run

    async def latest_run(self) -> AsyncRun | None:
        async for run in self.runs():
            return run
        return None

    async def latest_successful_run(self) -> AsyncRun | None:
        async for run in self.runs():
            if (await run.record()).status == "done":
                return run
        return None

    async def run(self, run_id: str) -> AsyncRun:
        """One run of this flow (`latest` for the newest); raises AflowNotFound naming what exists."""
        if run_id == "latest":
            latest = await self.latest_run()
            if latest is None:
                raise AflowNotFound(f"{self.name} has no runs in {self.store.url}")
            return latest
        run = AsyncRun(self.store, self.name, run_id)
        await run.record()
        return run

    def __repr__(self) -> str:
        return f"AsyncFlow('{self.name}')"


# -- runs -----------------------------------------------------------------------------------------


class AsyncRun:
    """One run: its record (read once, re-read while it says running), its steps and tasks."""

    def __init__(
        self, store: ObjectStore, flow: str, run_id: str, record: RunRecord | None = None
    ) -> None:
        self.store = store
        self.flow = flow
        self.id = run_id
        self._record = record
        self.damaged: list[DamagedData] = []  # task records skipped while listing

    @classmethod
    async def get(
        cls,
        pathspec: str,
        *,
        datastore: str | None = None,
        datastore_root: str | None = None,
        store: ObjectStore | None = None,
        namespace_check: bool = True,
    ) -> AsyncRun:
        """`Flow/run_id`, checked to exist and (unless told not to) to be in the current namespace."""
        flow, run_id = split_pathspec(pathspec, 2, "Flow/run_id")
        run = cls(open_client_store(datastore, datastore_root, store), flow, run_id)
        if namespace_check:
            await run.check_namespace()
        else:
            await run.record()
        return run

    @property
    def pathspec(self) -> str:
        return f"{self.flow}/{self.id}"

    async def record(self, refresh: bool = False) -> RunRecord:
        if self._record is None or refresh:
            data = await _get_or_none(self.store, run_record_key(self.flow, self.id))
            if data is None:
                raise AflowNotFound(await self._missing())
            key = run_record_key(self.flow, self.id)
            self._record = RunRecord.unpack(data, store_path(self.store.url, key))
        return self._record

    async def _missing(self) -> str:
        if not await self.store.list(self.flow):
            return f"no flow named '{self.flow}' in {self.store.url}"
        return f"no run {self.pathspec} in {self.store.url}"

    async def live_record(self) -> RunRecord:
        """The record, re-read if it last said running (a live run's record changes)."""
        record = await self.record()
        return await self.record(refresh=True) if record.status == "running" else record

    async def status(self) -> RunLiveness:
        """done | failed | cancelled | running, or dead: running with a stale heartbeat."""
        return (await self.live_record()).liveness(time.time())

    async def check_namespace(self) -> None:
        record = await self.record()
        ns = get_namespace()
        if ns is not None and ns not in run_tags(record):
            raise NamespaceMismatch(
                f"run {self.pathspec} is not in namespace '{ns}' (its tags: "
                f"{', '.join(sorted(run_tags(record))) or 'none'}); namespace(None) shows every run"
            )

    async def step_names(self) -> list[str]:
        """Steps that have tasks in the store, in the graph's order (Metaflow iterates them reversed)."""
        present = {n for n in await self.store.list(run_prefix(self.flow, self.id)) if n.isidentifier()}
        order = list((await self.record()).graph.get("steps", {}))
        return [s for s in order if s in present] + sorted(present.difference(order))

    async def step(self, name: str) -> AsyncStep:
        """A step of the run; StepNotFound (a KeyError) names the steps there are."""
        known = await self.step_names()
        if name not in known and name not in (await self.record()).graph.get("steps", {}):
            raise StepNotFound(
                f"run {self.pathspec} has no step '{name}' (its steps: {', '.join(known) or 'none yet'})"
            )
        return AsyncStep(self, name)

    async def steps(self) -> list[AsyncStep]:
        return [AsyncStep(self, n) for n in await self.step_names()]

    async def task_ids(self, step: str) -> list[str]:
        return sorted(await self.store.list(f"{run_prefix(self.flow, self.id)}/{step}"), key=id_order)

    def task(self, step: str, task_id: str) -> AsyncTask:
        return AsyncTask(self.store, self.flow, self.id, step, task_id)

    async def end_task(self) -> AsyncTask | None:
        record = await self.live_record()
        if record.end_task:
            _flow, _run, step, task_id = record.end_task.split("/")
            return self.task(step, task_id)
        return None

    async def data_task(self) -> AsyncTask:
        """The end task, or an error saying why the run has no end step data."""
        end = await self.end_task()
        if end is None:
            record = await self.record()
            why = f": {record.error.get('message')}" if record.error else ""
            status = record.liveness(time.time())
            raise AflowException(f"run {self.pathspec} has no end step data ({status}{why})")
        return end

    async def data(self, name: str) -> Any:
        """An artifact of the end step: `await run.data("x")`."""
        return await (await self.data_task()).artifact(name)

    def __repr__(self) -> str:
        return f"AsyncRun('{self.pathspec}')"


class AsyncStep:
    def __init__(self, run: AsyncRun, name: str) -> None:
        self.run = run
        self.id = self.name = name

    @property
    def pathspec(self) -> str:
        return f"{self.run.pathspec}/{self.name}"

    async def task_ids(self) -> list[str]:
        return await self.run.task_ids(self.name)

    async def tasks(self) -> list[AsyncTask]:
        """Every task of the step, in task id order (nothing read but one listing)."""
        return [self.run.task(self.name, t) for t in await self.task_ids()]

    @overload
    async def task(self, task_id: str) -> AsyncTask: ...

    @overload
    async def task(self, task_id: None = None) -> AsyncTask | None: ...

    async def task(self, task_id: str | None = None) -> AsyncTask | None:
        """The task `task_id` (TaskNotFound if absent), or without one the step's first task."""
        ids = await self.task_ids()
        if task_id is None:
            return self.run.task(self.name, ids[0]) if ids else None
        if task_id not in ids:
            raise TaskNotFound(
                f"step {self.pathspec} has no task '{task_id}' "
                f"(its tasks: {_few(ids) if ids else 'none yet'})"
            )
        return self.run.task(self.name, task_id)

    async def records(self) -> list[TaskRecord | None]:
        """Every task's latest record (None for a task without one yet, or whose record is
        damaged: skipped, named in `run.damaged` and warned about), read concurrently."""

        async def one(task: AsyncTask) -> TaskRecord | None:
            try:
                return await task.record_or_none()
            except DamagedData as e:
                skip_damaged(self.run.damaged, e)
                return None

        return await gather([functools.partial(one, t) for t in await self.tasks()])

    def __repr__(self) -> str:
        return f"AsyncStep('{self.pathspec}')"


def _few(ids: Sequence[str]) -> str:
    return ", ".join(ids) if len(ids) <= 10 else f"{', '.join(ids[:5])}, ... ({len(ids)} tasks)"


# -- tasks and artifacts --------------------------------------------------------------------------


TaskException = CaughtException  # `task.exception`: .exception, .type, .traceback, as @catch's


class LogLine(NamedTuple):
    """One saved output line: its ISO time (UTC), `stdout` or `stderr`, and the text."""

    stamp: str
    stream: str
    text: str

    @property
    def time(self) -> datetime | None:
        try:
            return datetime.fromisoformat(self.stamp.replace("Z", "+00:00")).astimezone()
        except ValueError:
            return None


class AsyncTask:
    def __init__(
        self,
        store: ObjectStore,
        flow: str,
        run_id: str,
        step: str,
        task_id: str,
        attempt: int | None = None,
    ) -> None:
        self.store = store
        self.flow = flow
        self.run_id = run_id
        self.step = step
        self.id = task_id
        self.attempt = attempt  # None: the latest
        self._record: TaskRecord | None = None

    @classmethod
    async def get(
        cls,
        pathspec: str,
        *,
        attempt: int | None = None,
        datastore: str | None = None,
        datastore_root: str | None = None,
        store: ObjectStore | None = None,
        namespace_check: bool = True,
    ) -> AsyncTask:
        """`Flow/run_id/step/task_id`, checked to exist and to be in the current namespace."""
        flow, run_id, step, task_id = split_pathspec(pathspec, 4, "Flow/run_id/step/task_id")
        run = await AsyncRun.get(f"{flow}/{run_id}", datastore=datastore, store=store,
                                 datastore_root=datastore_root,
                                 namespace_check=namespace_check)  # fmt: skip
        found = await (await run.step(step)).task(task_id)
        assert found is not None
        found.attempt = attempt
        return found

    @property
    def pathspec(self) -> str:
        return f"{self.flow}/{self.run_id}/{self.step}/{self.id}"

    def at_attempt(self, attempt: int | None) -> AsyncTask:
        """The same task, reading attempt `attempt` (None: the latest)."""
        return AsyncTask(self.store, self.flow, self.run_id, self.step, self.id, attempt)

    @property
    def _prefix(self) -> str:
        return task_prefix(self.flow, self.run_id, self.step, self.id)

    async def attempts(self) -> list[int]:
        """The attempts that left a start marker, a record or a log, in order."""
        names = await self.store.list(self._prefix)
        return sorted({int(n.split(".")[0]) for n in names if n.split(".")[0].isdigit()})

    async def _attempt(self) -> int | None:
        if self.attempt is not None:
            return self.attempt
        tried = await self.attempts()
        return tried[-1] if tried else None

    async def record_or_none(self) -> TaskRecord | None:
        """The chosen (default: latest) attempt's record; None while the task has not ended."""
        if self._record is None:
            attempt = await self._attempt()
            if attempt is None:
                return None
            key = f"{self._prefix}/{attempt}.mpk"
            data = await _get_or_none(self.store, key)
            path = store_path(self.store.url, key)
            record = TaskRecord.unpack(data, path) if data is not None else None
            if record is None or (not record.ok and self.attempt is None):
                return record  # a failed latest attempt may yet be followed by a retry: re-read
            self._record = record
        return self._record

    async def finished(self) -> bool:
        """Ended for good: done, or failed with no retry or @catch still to come."""
        record = await self.record_or_none()
        if record is None:
            return False
        if record.ok or self.attempt is not None:
            return True
        run = await AsyncRun(self.store, self.flow, self.run_id).live_record()
        if run.status != "running":
            return True
        decorators = run.graph.get("steps", {}).get(self.step, {}).get("decorators", {})
        retry = decorators.get("retry") or {}
        more = int(retry.get("times", 0)) + (1 if "catch" in decorators else 0)
        return record.attempt >= more

    async def record(self) -> TaskRecord:
        record = await self.record_or_none()
        if record is None:
            raise AflowNotFound(f"task {self.pathspec} has no record (yet) in {self.store.url}")
        return record

    async def artifact_refs(self) -> dict[str, art.ArtifactRef]:
        record = await self.record_or_none()
        return dict(record.artifacts) if record else {}

    async def artifact_names(self) -> list[str]:
        return sorted(await self.artifact_refs())

    async def artifacts(self) -> list[AsyncDataArtifact]:
        """Every artifact's name, size and hash (no value is loaded)."""
        refs = await self.artifact_refs()
        return [AsyncDataArtifact(self, n, refs[n]) for n in sorted(refs)]

    async def data_artifact(self, name: str) -> AsyncDataArtifact:
        ref = (await self.artifact_refs()).get(name)
        if ref is None:
            raise AttributeError(f"task {self.pathspec} has no artifact '{name}'")
        return AsyncDataArtifact(self, name, ref)

    async def artifact(self, name: str) -> Any:
        """An artifact's value: its blob fetched and unpickled (in a worker thread) now."""
        return await (await self.data_artifact(name)).data()

    async def has_log(self) -> bool:
        attempt = await self._attempt()
        if attempt is None:
            return False
        return await self.store.exists(task_log_key(self.flow, self.run_id, self.step, self.id, attempt))

    async def log(self, stream: str | None = None) -> list[LogLine]:
        """The attempt's saved output lines (both streams unless one is named); [] if none."""
        from aflow.stores.log_format import parse_log

        attempt = await self._attempt()
        if attempt is None:
            return []
        try:
            record = await self.record_or_none()
        except DamagedData:
            record = None  # the log is a file of its own: still readable
        if record is not None and record.cloned_from:  # reused by a resume: its output is there
            _flow, run_id, step, task_id = record.cloned_from.split("/")
            return await AsyncTask(self.store, self.flow, run_id, step, task_id).log(stream)
        key = task_log_key(self.flow, self.run_id, self.step, self.id, attempt)
        data = await _get_or_none(self.store, key)
        lines = [LogLine(*p) for p in parse_log(data)] if data is not None else []
        return [ln for ln in lines if stream is None or ln.stream == stream]

    async def output(self, stream: str) -> str:
        """`task.stdout` / `task.stderr`: the saved text of one stream."""
        return "".join(f"{ln.text}\n" for ln in await self.log(stream))

    async def exception(self) -> CaughtException | None:
        """Why the task failed, as @catch's object (`.exception`, `.type`, `.traceback`); None
        for a task that succeeded, also one whose failure @catch handled (as in Metaflow)."""
        record = await self.record_or_none()
        if record is None or record.ok:
            return None
        if record.error:
            e = record.error
            kind = e.get("class") or e.get("type") or ""
            return CaughtException(e.get("message", ""), kind, e.get("traceback") or None, self.step)
        return None

    async def foreach_stack(self) -> list[Frame]:
        """The enclosing foreaches, outermost first, as the task record has them."""
        record = await self.record_or_none()
        return list(record.foreach_stack) if record else []

    def __repr__(self) -> str:
        return f"AsyncTask('{self.pathspec}')"


class AsyncDataArtifact:
    """An artifact of a task: name, size and hash from the record; the value on `await data()`."""

    def __init__(self, task: AsyncTask, name: str, ref: art.ArtifactRef) -> None:
        self.task = task
        self.id = self.name = name
        self.ref = ref

    @property
    def pathspec(self) -> str:
        return f"{self.task.pathspec}/{self.name}"

    @property
    def size(self) -> int:
        """Bytes stored (the serialised form)."""
        return int(self.ref["s"]) if "k" in self.ref else len(self.ref["v"])

    @property
    def sha(self) -> str:
        """SHA-256 of the serialised form (the blob's key; computed for an inline value)."""
        return self.ref["k"] if "k" in self.ref else hashlib.sha256(self.ref["v"]).hexdigest()

    async def data(self) -> Any:
        blob: Buffer
        if "v" in self.ref:
            blob = self.ref["v"]
        else:
            try:
                what = f"artifact '{self.name}' of task {self.task.pathspec}"
                blob = await art.load_ref_blob_async(self.task.store, self.task.flow, self.ref, what)
            except NotFound:
                where = f"{self.task.pathspec} is missing from {self.task.store.url}"
                raise AflowNotFound(f"artifact '{self.name}' of {where}") from None
        return await anyio.to_thread.run_sync(art.deserialize, blob)

    def __repr__(self) -> str:
        return f"AsyncDataArtifact('{self.pathspec}')"
