"""What the UI reads from the store: pages of runs, one run's tasks, one task's attempts and logs.

Reads go through the client's async core and a read-only view of the store, so the UI can never
change what it shows. Reading stays cheap on big stores: the runs page lists run ids (one listing per
flow) and reads only the records of the page it shows; a run's tasks are read once each and a task
that has ended for good is never read again, so a live 1,000-way foreach costs a few listings per
refresh, not a thousand reads. Nothing here renders HTML.
"""

from __future__ import annotations

import time
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from functools import partial

import anyio

from aflow.client.core import (
    AsyncDataArtifact,
    AsyncFlow,
    AsyncRun,
    AsyncTask,
    LogLine,
    id_order,
    skip_damaged,
)
from aflow.exception import AflowNotFound, DamagedData
from aflow.stores.artifacts import load_ref_blob_async
from aflow.stores.base import BlockingObjectStore, Buffer, NotFound, ObjectStore, StoreBase
from aflow.stores.records import (
    RunRecord,
    TaskRecord,
    TaskStart,
    read_record,
    task_log_key,
    task_prefix,
    task_start_key,
)
from aflow.stores.transfer import gather
from aflow.ui.finding import RunQuery, matches, sort_key

FINAL = ("done", "failed", "cancelled")


class ReadOnlyStore(StoreBase):
    """The store, with every write refused: the UI only looks."""

    def __init__(self, store: ObjectStore) -> None:
        self._store = store
        self.url = store.url

    async def put(self, key: str, parts: Sequence[Buffer]) -> None:
        raise PermissionError(f"aflow ui is read-only: refused to write {key}")

    async def get(self, key: str) -> Buffer:
        return await self._store.get(key)

    async def get_range(self, key: str, start: int, length: int) -> bytes:
        return await self._store.get_range(key, start, length)

    async def exists(self, key: str) -> bool:
        return await self._store.exists(key)

    async def list(self, prefix: str) -> list[str]:
        return await self._store.list(prefix)

    def blocking(self) -> BlockingObjectStore:
        raise PermissionError("aflow ui reads through the async store only")

    async def check(self) -> None:
        await self._store.check()

    async def aclose(self) -> None:
        await self._store.aclose()


# -- the runs page --------------------------------------------------------------------------------


@dataclass
class RunRow:
    flow: str
    run_id: str
    record: RunRecord
    status: str  # the record's status, or dead


@dataclass
class RunsPage:
    flows: list[tuple[str, int]]  # every flow and how many runs it has
    rows: list[RunRow]
    total: int  # runs of the flow(s) shown
    page: int
    pages: int
    damaged: list[str] = field(default_factory=list)  # run records skipped: what is wrong, where


class RunsReader:
    """Pages of runs, newest first, across every flow or of one."""

    def __init__(self, store: ObjectStore, keep: int = 50_000) -> None:
        self.store = store
        # Records that never change again; a filtered list reads every run's, so keep many (a run
        # record is small).
        self._final: OrderedDict[tuple[str, str], RunRecord] = OrderedDict()
        self._keep = keep
        self.every = 0.75
        self._lock = anyio.Lock()
        self._listed: tuple[float, list[AsyncFlow], list[list[str]]] | None = None

    async def page(
        self, flow: str | None, page: int, per_page: int, query: RunQuery | None = None
    ) -> RunsPage:
        """A page of runs; with a `query` that filters or sorts otherwise than newest first,
        every run's record is read to choose and order them."""
        query = query or RunQuery()
        flows, id_lists = await self._listing()
        counts = [(f.name, len(ids)) for f, ids in zip(flows, id_lists, strict=True) if ids]
        shown = [
            (f.name, i)
            for f, ids in zip(flows, id_lists, strict=True)
            if flow is None or f.name == flow
            for i in ids
        ]
        # Run ids are times: newest first across flows too.
        shown.sort(key=lambda pair: id_order(pair[1]), reverse=True)
        damaged: list[DamagedData] = []
        now = time.time()
        if query.plain:
            pages = max(1, -(-len(shown) // per_page))
            page = min(max(page, 1), pages)
            wanted = shown[(page - 1) * per_page : page * per_page]
            records = await gather([partial(self._record, f, i, damaged) for f, i in wanted])
            rows = [
                RunRow(f, i, r, r.liveness(now))
                for (f, i), r in zip(wanted, records, strict=True)
                if r is not None
            ]
            total = len(shown)
        else:
            records = await gather([partial(self._record, f, i, damaged) for f, i in shown])
            every = [
                RunRow(f, i, r, r.liveness(now))
                for (f, i), r in zip(shown, records, strict=True)
                if r is not None
            ]
            every = [r for r in every if matches(query, r.record, r.status)]
            if query.sort:
                column = query.sort.lstrip("-")
                every.sort(
                    key=lambda r: sort_key(column, r.flow, r.run_id, r.record, r.status),  # type: ignore[arg-type,return-value]
                    reverse=query.sort.startswith("-"),
                )
            total = len(every)
            pages = max(1, -(-total // per_page))
            page = min(max(page, 1), pages)
            rows = every[(page - 1) * per_page : page * per_page]
        return RunsPage(sorted(counts), rows, total, page, pages, [str(e) for e in damaged])

    async def _listing(self) -> tuple[list[AsyncFlow], list[list[str]]]:
        """Every flow and its run ids, listed at most every `every` seconds however many pages
        (tabs, streams) ask: one listing per flow serves them all."""
        async with self._lock:
            if self._listed is None or time.monotonic() - self._listed[0] >= self.every:
                flows = await AsyncFlow.list(store=self.store)
                id_lists = await gather([f.run_ids for f in flows])
                self._listed = (time.monotonic(), flows, id_lists)
            return self._listed[1], self._listed[2]

    async def _record(self, flow: str, run_id: str, damaged: list[DamagedData]) -> RunRecord | None:
        kept = self._final.get((flow, run_id))
        if kept is not None:
            return kept
        try:
            record = await AsyncRun(self.store, flow, run_id).record()
        except AflowNotFound:
            return None  # a run being created: its folder exists before its record
        except DamagedData as e:
            skip_damaged(damaged, e)
            return None
        if record.status in FINAL:
            self._final[(flow, run_id)] = record
            while len(self._final) > self._keep:
                self._final.popitem(last=False)
        return record


# -- one run --------------------------------------------------------------------------------------


@dataclass
class TaskState:
    """A task as the UI knows it: its latest attempt's record (None until one is written), the
    records of its earlier attempts, and for an attempt still running its start marker (since
    when, which foreach item, where) or, from an aflow that wrote none, when its output began."""

    step: str
    task_id: str
    attempts: int = 0
    record: TaskRecord | None = None
    final: bool = False  # ended for good: never read again
    earlier: list[TaskRecord] = field(default_factory=list)  # earlier attempts, oldest first
    run_live: bool = True  # its run may still write to it
    first_output: float | None = None  # no record, no marker: when its saved output begins
    damaged: str | None = None  # its record is damaged: what is wrong, where
    start: TaskStart | None = None  # the latest attempt's start marker, while it has no record
    looked: tuple[int, bool] = (-1, False)  # the attempt `start` is of, and its marker was read

    @property
    def status(self) -> str:
        """done | caught (failed, @catch went on) | failed | stopped (the engine stopped it) |
        retrying (failed, another attempt coming) | running (no record yet) | partial (no record,
        and its run has ended or died: it never finished) | damaged (its record is)."""
        if self.damaged is not None:
            return "damaged"
        return task_status(self.record, self.final, self.run_live)

    @property
    def ended_ok(self) -> bool:
        return self.status in ("done", "caught")

    @property
    def index(self) -> str:
        """The task's foreach indices, outermost first (`2.1` in a nested foreach); '' outside one."""
        source = self.record or self.start
        stack = source.foreach_stack if source else []
        return ".".join(str(int(frame[1])) for frame in stack)

    @property
    def started(self) -> float | None:
        """When the latest attempt began: its record's or marker's time, else (an older aflow
        wrote no marker) its first saved output's, an upper bound (see `exact`)."""
        if self.record is not None:
            return self.record.started_at
        if self.start is not None:
            return self.start.started_at
        return self.first_output

    @property
    def exact(self) -> bool:
        """`started` is when the attempt began, not only when its output did."""
        return self.record is not None or self.start is not None


def task_status(record: TaskRecord | None, final: bool, run_live: bool) -> str:
    if record is None:
        return "running" if run_live else "partial"
    if record.ok:
        return "caught" if record.error else "done"
    if record.stopped:
        return "stopped"
    return "failed" if final else "retrying"


@dataclass
class RunSnapshot:
    flow: str
    run_id: str
    record: RunRecord
    status: str  # liveness: running, done, failed, cancelled or dead
    steps: dict[str, list[TaskState]] = field(default_factory=dict)  # in graph order
    read_at: float = 0.0
    seen_at: float = 0.0  # the last sign of life the store shows: a heartbeat, a task's start or end

    @property
    def live(self) -> bool:
        return self.status == "running"

    def end(self, now: float) -> float:
        """When the run ended: its record's end, else now; for a dead run the last sign of life
        (its scheduler died some time after it, unseen)."""
        record = self.record
        if record.finished_at:
            return record.finished_at
        return max(record.heartbeat_at, self.seen_at) if self.status == "dead" else now


class RunReader:
    """One run, re-read at most every `every` seconds however many pages watch it."""

    def __init__(self, store: ObjectStore, flow: str, run_id: str, every: float = 0.75) -> None:
        self.run = AsyncRun(store, flow, run_id)
        self.every = every
        self._lock = anyio.Lock()
        self._tasks: dict[tuple[str, str], TaskState] = {}
        self._snapshot: RunSnapshot | None = None

    async def snapshot(self) -> RunSnapshot:
        async with self._lock:
            last = self._snapshot
            # A finished run never changes again; a live (or dead: it may come back) one is re-read.
            if last is not None and (last.status in FINAL or time.time() - last.read_at < self.every):
                return last
            self._snapshot = await self._read()
            return self._snapshot

    async def _read(self) -> RunSnapshot:
        record = await self.run.live_record()
        status = record.liveness(time.time())
        order = list(record.graph.get("steps", {}))
        names = await self.run.step_names()
        id_lists = await gather([partial(self.run.task_ids, s) for s in names])
        fresh: list[TaskState] = []
        for step, ids in zip(names, id_lists, strict=True):
            for task_id in ids:
                state = self._tasks.setdefault((step, task_id), TaskState(step, task_id))
                if not state.final:
                    fresh.append(state)
        retries = {s: more_attempts(record, s) for s in order}
        await gather([partial(self._read_task, t, retries.get(t.step, 0)) for t in fresh])
        for state in fresh:
            state.run_live = status == "running"
        if status != "running":
            for state in fresh:
                state.final = state.record is not None  # nothing will come after this attempt
        steps: dict[str, list[TaskState]] = {s: [] for s in order}
        for (step, _), state in self._tasks.items():
            steps.setdefault(step, []).append(state)
        for states in steps.values():
            states.sort(key=lambda t: id_order(t.task_id))
        ends = (t.record.finished_at if t.record else t.started for ts in steps.values() for t in ts)
        seen = max((e for e in ends if e is not None), default=0.0)
        return RunSnapshot(record.flow, record.run_id, record, status, steps, time.time(), seen)

    async def _read_task(self, state: TaskState, more: int) -> None:
        task = self.run.task(state.step, state.task_id)
        names = await task.store.list(task_prefix(task.flow, task.run_id, task.step, task.id))
        tried = attempts_of(names)
        if not tried:
            return
        state.attempts = tried[-1] + 1
        try:
            state.record = await task.at_attempt(tried[-1]).record_or_none()
        except DamagedData as e:
            state.damaged, state.final = str(e), True
            return
        if len(state.earlier) < len(tried) - 1:
            # Earlier attempts never change: each is read once, for the timeline.
            got = await gather(
                [partial(_record_or_none, task, n) for n in tried[len(state.earlier) : -1]]
            )
            state.earlier += [r for r in got if r is not None]
        if state.record is not None:
            state.final = state.record.ok or state.record.stopped or state.record.attempt >= more
            state.start = None
        else:
            await _read_start(state, task, tried[-1], names)


async def _read_start(state: TaskState, task: AsyncTask, attempt: int, names: list[str]) -> None:
    """When a running attempt began: its marker, read once (a retry's attempt has its own), or
    without one its output's first line, read once there is output."""
    if state.looked[0] != attempt:
        state.looked, state.start, state.first_output = (attempt, False), None, None
    if not state.looked[1] and f"{attempt}.start" in names:
        state.looked = (attempt, True)
        state.start = await start_marker(task, attempt)
    if state.start is None and state.first_output is None and f"{attempt}.log" in names:
        state.first_output = await _first_stamp(task, attempt)


def attempts_of(names: list[str]) -> list[int]:
    """The attempts a task folder's names show (`0.start`, `0.log`, `0.mpk`, ...), in order."""
    return sorted({int(n.split(".")[0]) for n in names if n.split(".")[0].isdigit()})


async def start_marker(task: AsyncTask, attempt: int) -> TaskStart | None:
    """The attempt's start marker; None when there is none, or it is damaged or not this task's
    (a hint for the view, never taken on trust)."""
    key = task_start_key(task.flow, task.run_id, task.step, task.id, attempt)
    try:
        start = await read_record(task.store, TaskStart, key)
    except (NotFound, DamagedData):
        return None
    return start if start.belongs_to(task.step, task.id, attempt) else None


async def _record_or_none(task: AsyncTask, attempt: int) -> TaskRecord | None:
    try:
        return await task.at_attempt(attempt).record_or_none()
    except DamagedData:
        return None  # an earlier attempt's damaged record: its bar is left out


async def _first_stamp(task: AsyncTask, attempt: int) -> float | None:
    """When a running task's saved output begins (its first line's time): what the store says of
    a task before its record lands. Only the first line is read."""
    try:
        head = await task.store.get_range(
            task_log_key(task.flow, task.run_id, task.step, task.id, attempt), 0, 40
        )
    except Exception:
        return None
    stamp = bytes(head).split(b" ", 1)[0].decode(errors="replace")
    try:
        return datetime.fromisoformat(stamp.replace("Z", "+00:00")).timestamp()
    except ValueError:
        return None


def more_attempts(record: RunRecord, step: str) -> int:
    """How many attempts after the first a failing task of `step` gets (@retry, then @catch)."""
    decorators = record.graph.get("steps", {}).get(step, {}).get("decorators", {})
    if not isinstance(decorators, dict):
        return 0
    return int(decorators.get("retry", {}).get("times", 0)) + (1 if "catch" in decorators else 0)


class RunReaders:
    """A RunReader per run a page looks at, the least recently used let go past `keep`."""

    def __init__(self, store: ObjectStore, keep: int = 64) -> None:
        self.store = store
        self.keep = keep
        self._readers: OrderedDict[tuple[str, str], RunReader] = OrderedDict()

    def get(self, flow: str, run_id: str) -> RunReader:
        key = (flow, run_id)
        reader = self._readers.pop(key, None) or RunReader(self.store, flow, run_id)
        self._readers[key] = reader
        while len(self._readers) > self.keep:
            self._readers.popitem(last=False)
        return reader


# -- one task -------------------------------------------------------------------------------------


@dataclass
class AttemptView:
    attempt: int
    record: TaskRecord | None
    log: list[LogLine]
    start: TaskStart | None = None  # its start marker, read while it has no record


@dataclass
class TaskView:
    task: AsyncTask
    attempts: list[AttemptView]  # every attempt, oldest first
    run: RunRecord
    run_status: str

    @property
    def latest(self) -> AttemptView | None:
        return self.attempts[-1] if self.attempts else None

    @property
    def final(self) -> bool:
        """Nothing more will be written for this task: it ended for good, or its run did."""
        if self.run_status != "running":
            return True
        record = self.latest.record if self.latest else None
        if record is None:
            return False
        return record.ok or record.stopped or record.attempt >= more_attempts(self.run, self.task.step)

    @property
    def status(self) -> str:
        """As TaskState.status."""
        record = self.latest.record if self.latest else None
        return task_status(record, self.final, self.run_status == "running")


async def read_task(store: ObjectStore, flow: str, run_id: str, step: str, task_id: str) -> TaskView:
    """Every attempt of a task: its record and its saved output (AflowNotFound for an unknown task)."""
    run = AsyncRun(store, flow, run_id)
    record = await run.live_record()
    task = await (await run.step(step)).task(task_id)
    assert task is not None
    tried = await task.attempts()

    async def one(n: int) -> AttemptView:
        at = task.at_attempt(n)
        record = await at.record_or_none()
        start = await start_marker(task, n) if record is None else None
        return AttemptView(n, record, await at.log(), start)

    attempts = await gather([partial(one, n) for n in tried])
    return TaskView(task, attempts, record, record.liveness(time.time()))


async def artifact_blob(artifact: AsyncDataArtifact) -> Buffer:
    """An artifact's stored bytes (inline in its record, or its blob), not yet unpickled."""
    if "v" in artifact.ref:
        return artifact.ref["v"]
    try:
        what = f"artifact '{artifact.name}' of task {artifact.task.pathspec}"
        return await load_ref_blob_async(artifact.task.store, artifact.task.flow, artifact.ref, what)
    except NotFound:
        raise AflowNotFound(
            f"artifact '{artifact.name}' of {artifact.task.pathspec} is missing"
        ) from None
