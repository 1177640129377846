"""The async scheduler: walks the flow's DAG, starting each ready task as a coroutine.

One anyio task group holds every running task; a semaphore bounds how many run at once
(`--max-workers`). A task's coroutine waits for a slot, hands the task to the backend, reads the
task's record from the store (its only source of truth about what the task produced), releases the
slot, and then starts what comes next. A foreach of N children is produced lazily by the split task's
coroutine, one child per free slot, so N can be 100,000 without N coroutines. A join waits on a
counter per split task and gets its inputs as a list, written to the store as a manifest when long.

The first failed task fails the run: the task group is cancelled, which stops every running task.
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import itertools
import time
from dataclasses import dataclass, field
from typing import Any, Protocol

import anyio
import msgpack

from aflow.backends.base import Backend
from aflow.backends.errors import PlatformError
from aflow.engine.events import (
    EventBus,
    ForeachStarted,
    TaskFailed,
    TaskFinished,
    TaskStarted,
    TaskStopped,
)
from aflow.engine.step_settings import StepSettings
from aflow.engine.task_logs import LogFlusher, TaskLog
from aflow.engine.wire import TaskSpec
from aflow.exception import TaskFailedError, TaskKilled, qualified_name
from aflow.frames import Frame
from aflow.graph import FlowGraph
from aflow.stores.artifacts import ArtifactRef, blob_key
from aflow.stores.base import NotFound, ObjectStore
from aflow.stores.records import TaskRecord, read_record, task_log_key, task_record_key

MANIFEST_THRESHOLD = 32


@dataclass(frozen=True)
class OpenSplit:
    """A split the task is inside of: which split task, which branch, how many branches."""

    split: str
    branch: int
    width: int


@dataclass
class Ready:
    step: str
    parents: list[str]  # "step/task_id/attempt"
    foreach_stack: list[Frame]
    splits: tuple[OpenSplit, ...]


@dataclass
class _JoinWait:
    width: int
    arrived: dict[int, str] = field(default_factory=dict)


@dataclass
class Failure:
    """Why an attempt did not commit; `platform` when the task was lost, not its code's fault."""

    message: str
    traceback: str | None
    platform: bool
    kind: str | None = None  # the module-qualified exception class, when one is known

    def as_dict(self) -> dict[str, Any]:
        return {"message": self.message, "traceback": self.traceback or "", "class": self.kind}


class Origin(Protocol):
    """Where a resumed run finds the tasks it may reuse (see resume.py)."""

    async def clone(self, ready: Ready, task_id: str) -> TaskRecord | None: ...


@dataclass
class RunContext:
    """What every task of the run shares."""

    flow_name: str
    run_id: str
    flow_module: str
    flow_file: str
    sys_path: list[str]
    datastore: str
    store_root: str
    param_artifacts: dict[str, ArtifactRef]
    param_names: list[str]
    decorators: dict[str, dict[str, dict[str, Any]]] = field(default_factory=dict)
    tags: list[str] = field(default_factory=list)
    origin_run_id: str | None = None
    max_num_splits: int | None = None
    environments: dict[str, dict[str, str]] = field(default_factory=dict)
    current: dict[str, Any] = field(default_factory=dict)  # more of every task's `current`


class Scheduler:
    """Runs one run's graph to its end on a backend: `await run()` returns when the end step is
    done and raises TaskFailedError for the first task that failed (its siblings stopped). What a
    task produced is read from its record in `store`; everything a user sees goes to `bus`."""

    def __init__(
        self,
        graph: FlowGraph,
        ctx: RunContext,
        backend: Backend,
        store: ObjectStore,
        bus: EventBus,
        max_workers: int,
        origin: Origin | None = None,
    ) -> None:
        self.origin = origin
        self.graph = graph
        self.ctx = ctx
        self.backend = backend
        self.store = store
        self.bus = bus
        self.slots = anyio.Semaphore(max_workers)
        self._ids = itertools.count(1)
        self._joins: dict[tuple[str, str], _JoinWait] = {}
        self._step_settings: dict[str, StepSettings] = {}
        self._tg: anyio.abc.TaskGroup | None = None
        self.failure: TaskFailedError | None = None
        self.end_task: str | None = None
        self.tasks_done = 0
        self.tasks_failed = 0
        self.tasks_stopped = 0
        self.logs = LogFlusher(store)

    async def run(self) -> None:
        """Run the flow to its end; raises TaskFailedError for the first task that failed."""
        async with anyio.create_task_group() as background:
            background.start_soon(self.logs.run)
            try:
                async with anyio.create_task_group() as tg:
                    self._tg = tg
                    await self._launch(Ready("start", [], [], ()))
            finally:
                background.cancel_scope.cancel()
        if self.failure is not None:
            raise self.failure
        if self._joins or self.end_task is None:
            # Validation should make this impossible; never report such a run as done.
            waiting = ", ".join(f"{join} (from {split})" for join, split in self._joins)
            raise RuntimeError(f"the run stopped before its end step; joins still waiting: {waiting}")

    async def _launch(self, ready: Ready) -> None:
        # A remote task waits in its platform's queue, not for a local slot: a 10,000-way foreach
        # on @batch is submitted at once, as one array job, and costs here only its coroutines.
        local = not self._settings(ready.step).remote
        if local:
            await self.slots.acquire()
        assert self._tg is not None
        self._tg.start_soon(self._task, ready, str(next(self._ids)), local)

    async def _task(self, ready: Ready, task_id: str, holds_slot: bool) -> None:
        try:
            try:
                record = await self._execute(ready, task_id)
            finally:
                if holds_slot:
                    self.slots.release()
            await self._advance(ready, record)
        except TaskFailedError as e:
            if self.failure is None:
                self.failure = e
            assert self._tg is not None
            self._tg.cancel_scope.cancel()

    async def _execute(self, ready: Ready, task_id: str) -> TaskRecord:
        """Run the task to a done record: attempts per @retry, then @catch's fallback, or fail."""
        if self.origin is not None:
            cloned = await self.origin.clone(ready, task_id)
            if cloned is not None:
                self.tasks_done += 1
                self.bus.emit(TaskFinished(cloned.pathspec, cloned.attempt, 0.0, cloned=True))
                return cloned
        settings = self._settings(ready.step)
        parents_manifest = None
        if len(ready.parents) > MANIFEST_THRESHOLD:
            parents_manifest = await self._write_manifest(ready.parents)
        attempt = 0
        while True:
            spec = self._spec(ready, task_id, attempt, parents_manifest)
            record, failure = await self._attempt(spec, settings)
            if failure is None:
                assert record is not None
                return record
            retrying = attempt < settings.retries and (
                failure.platform or not settings.only_platform_errors
            )
            wait = self._retry_wait(settings) if retrying else 0.0
            self.bus.emit(
                TaskFailed(
                    spec.pathspec, attempt, failure.message, failure.traceback, retrying, wait
                )
            )
            if retrying:
                await anyio.sleep(wait)
                attempt += 1
                continue
            if settings.catch is not None:
                spec = self._spec(ready, task_id, attempt + 1, parents_manifest)
                spec.fallback = {**settings.catch, "error": failure.as_dict()}
                record, fallback_failure = await self._attempt(spec, settings, timed=False)
                if fallback_failure is None:
                    assert record is not None
                    return record
                failure = fallback_failure
            self.tasks_failed += 1
            raise TaskFailedError(spec.pathspec, failure.message, failure.traceback)

    def _settings(self, step: str) -> StepSettings:
        settings = self._step_settings.get(step)
        if settings is None:
            decorators = self.ctx.decorators.get(step, {})
            settings = self._step_settings[step] = StepSettings.of(step, decorators)
        return settings

    @staticmethod
    def _retry_wait(settings: StepSettings) -> float:
        """Seconds before the next attempt. A local step retries at once, as Metaflow's local
        runtime does; a remote step waits `minutes_between_retries`, since a platform failure
        (a reclaimed spot instance, a throttled API) often needs a moment to clear."""
        return 60 * settings.minutes_between_retries if settings.remote else 0.0

    def _spec(self, ready: Ready, task_id: str, attempt: int, parents_manifest: str | None) -> TaskSpec:
        ctx = self.ctx
        return TaskSpec(
            flow_name=ctx.flow_name,
            flow_module=ctx.flow_module,
            flow_file=ctx.flow_file,
            run_id=ctx.run_id,
            step=ready.step,
            task_id=task_id,
            datastore=ctx.datastore,
            store_root=ctx.store_root,
            attempt=attempt,
            sys_path=ctx.sys_path,
            parents=[] if parents_manifest else ready.parents,
            parents_manifest=parents_manifest,
            foreach_stack=ready.foreach_stack,
            initial_artifacts=ctx.param_artifacts if ready.step == "start" else {},
            param_names=ctx.param_names,
            decorators=ctx.decorators.get(ready.step, {}),
            tags=ctx.tags,
            origin_run_id=ctx.origin_run_id,
            environment=ctx.environments.get(ready.step),
            current=ctx.current,
        )

    async def _attempt(
        self, spec: TaskSpec, settings: StepSettings, timed: bool = True
    ) -> tuple[TaskRecord | None, Failure | None]:
        """One attempt on the backend; its record when it committed, else why not."""
        log = TaskLog(spec.pathspec, self.bus, self.logs)
        started = time.monotonic()
        self.bus.emit(TaskStarted(spec.pathspec, spec.attempt, spec.fallback is not None))
        key = (spec.flow_name, spec.run_id, spec.step, spec.task_id, spec.attempt)
        log.key = task_log_key(*key)
        # A remote task times itself from when it starts (task_runtime), not here where its wait
        # in the platform's queue would count too.
        limit = settings.timeout_seconds if timed and not settings.remote else None
        # A task times its own step (so @catch keeps what the step set); this deadline only
        # stops one that outlives that, say stuck in C code or in committing its outputs.
        backstop = limit + min(2.0, limit) if limit is not None else None
        lost: str | None = None
        try:
            with anyio.move_on_after(backstop) as deadline:
                outcome = await self.backend.run(spec, log)
            if not deadline.cancelled_caught and outcome.returncode != 0:
                lost = await self._lost(spec, settings, outcome.reason, log)
        except PlatformError as e:  # the backend saw the task lost: a failed attempt, retried
            return None, Failure(str(e), None, platform=True)
        except anyio.get_cancelled_exc_class():
            with anyio.CancelScope(shield=True):
                await self._stopped(spec, started)
            raise
        finally:
            with anyio.CancelScope(shield=True):  # a stopped task's output is kept too
                await log.save(self.store, task_log_key(*key))
        if lost is not None:
            await self._record_lost(spec, lost, started)
        if deadline.cancelled_caught:
            message = f"TimeoutException: the step ran longer than {limit:g} s (@timeout)"
            return None, Failure(message, None, False, "aflow.exception.TimeoutException")
        record = await self._read_record(task_record_key(*key))
        if outcome.returncode == 0 and record is not None and record.ok:
            if not spec.fallback:
                self.tasks_done += 1
            self.bus.emit(TaskFinished(spec.pathspec, spec.attempt, time.monotonic() - started))
            return record, None
        if record is not None and record.error:
            error = record.error
            # stopped from outside (spot reclaim, kill), or its process died: not its code
            platform = record.stopped or error["type"] == TaskKilled.__name__
            return None, Failure(
                f"{error['type']}: {error['message']}",
                error.get("traceback"),
                platform,
                error.get("class"),
            )
        reason = outcome.reason or "the task ended without committing its record"
        return None, Failure(reason, None, platform=True)

    async def _lost(
        self, spec: TaskSpec, settings: StepSettings, reason: str | None, log: TaskLog
    ) -> str | None:
        """Why a local task's process ended without a record (killed by a signal, say a
        segfault), said in its stderr too; None when it left a record or runs remotely."""
        if settings.remote:
            return None  # a remote platform may still be finishing it: its record is its own
        key = task_record_key(spec.flow_name, spec.run_id, spec.step, spec.task_id, spec.attempt)
        if await self.store.exists(key):
            return None
        why = f"the task's process {reason or 'ended without committing its record'}"
        if reason and reason.startswith("killed by SIG"):
            why = f"the task's process was {reason} (a crash in native code, or killed from outside)"
        await log.line("stderr", why)
        return why

    async def _record_lost(self, spec: TaskSpec, why: str, started: float) -> None:
        """A failed record on behalf of a task that could not write its own, so the client's
        `task.exception` and `aflow show` can say what happened."""
        record = TaskRecord.for_spec(
            spec, status="failed",
            started_at=time.time() - (time.monotonic() - started), finished_at=time.time(),
            error={"type": TaskKilled.__name__, "class": qualified_name(TaskKilled), "message": why,
                   "traceback": ""},
        )  # fmt: skip
        key = task_record_key(spec.flow_name, spec.run_id, spec.step, spec.task_id, spec.attempt)
        with anyio.CancelScope(shield=True):
            await self.store.put(key, [record.pack()])

    async def _stopped(self, spec: TaskSpec, started: float) -> None:
        """The run is being cancelled (a sibling failed, or the user stopped it) while this task
        ran: announce how it ended, so every view counts it the same way. It may have committed
        just before the stop reached it; otherwise it is stopped, not failed."""
        key = task_record_key(spec.flow_name, spec.run_id, spec.step, spec.task_id, spec.attempt)
        try:
            record = await self._read_record(key)
        except Exception:
            record = None  # the store is what failed; the task still did not finish
        if record is not None and record.ok:
            self.tasks_done += 1
            self.bus.emit(TaskFinished(spec.pathspec, spec.attempt, time.monotonic() - started))
            return
        self.tasks_stopped += 1
        self.bus.emit(TaskStopped(spec.pathspec, spec.attempt))
        if record is None:
            # Stopped before its process could write a record (or before it began): record it
            # here, so readers count it as the terminal did. A task that is told to stop writes
            # its own "stopped" record; one that committed in the last milliseconds writes "done"
            # over this one, since it writes last.
            with contextlib.suppress(Exception):
                await self.store.put(key, [self._stopped_record(spec).pack()])

    @staticmethod
    def _stopped_record(spec: TaskSpec) -> TaskRecord:
        now = time.time()
        message = "the engine stopped the task: its run was failing or cancelled"
        return TaskRecord.for_spec(
            spec,
            status="stopped",
            started_at=now,
            finished_at=now,
            error={"type": "TaskStopped", "message": message, "traceback": ""},
        )

    async def _read_record(self, key: str) -> TaskRecord | None:
        try:
            return await read_record(self.store, TaskRecord, key)
        except NotFound:
            return None

    async def _write_manifest(self, parents: list[str]) -> str:
        data = msgpack.packb(parents)
        digest = hashlib.sha256(data).hexdigest()
        await self.store.put(blob_key(self.ctx.flow_name, digest), [data])
        return digest

    @functools.cache  # noqa: B019 - one scheduler per run, a handful of steps
    def _foreach_body(self, split: str) -> tuple[str, ...]:
        """Steps whose innermost enclosing foreach is `split`: each runs once per item."""
        body = []
        for node in self.graph:
            foreaches = [s for s in node.split_parents if self.graph[s].foreach_param is not None]
            if foreaches and foreaches[-1] == split and node.name != split:
                body.append(node.name)
        return tuple(body)

    async def _advance(self, ready: Ready, record: TaskRecord) -> None:
        node = self.graph[ready.step]
        me = f"{record.step}/{record.task_id}/{record.attempt}"
        if node.type == "end":
            self.end_task = record.pathspec
            return
        if node.foreach_param is not None:
            width = record.num_splits or 0
            limit = self.ctx.max_num_splits
            if limit is not None and width > limit:
                message = (
                    f"step '{ready.step}' fans out into {width} tasks, more than "
                    f"--max-num-splits {limit}"
                )
                raise TaskFailedError(record.pathspec, message)
            child = node.out_funcs[0]
            self.bus.emit(ForeachStarted(record.pathspec, width, self._foreach_body(ready.step)))
            for i in range(width):
                frame = Frame(ready.step, i, width, record.split_digest)
                split = OpenSplit(me, i, width)
                await self._launch(
                    Ready(child, [me], [*record.foreach_stack, frame], (*ready.splits, split))
                )
            return
        if node.is_switch:  # a conditional step: only the step its condition picked runs next
            await self._launch(Ready(record.next_steps[0], [me], record.foreach_stack, ready.splits))
            return
        if node.is_split:
            width = len(node.out_funcs)
            for i, child in enumerate(node.out_funcs):
                split = OpenSplit(me, i, width)
                await self._launch(Ready(child, [me], record.foreach_stack, (*ready.splits, split)))
            return
        child = node.out_funcs[0]
        if not self.graph[child].takes_inputs:
            await self._launch(Ready(child, [me], record.foreach_stack, ready.splits))
            return
        # The last step of a branch: count it in, and start the join when all have arrived.
        closing = ready.splits[-1]
        wait = self._joins.setdefault((child, closing.split), _JoinWait(closing.width))
        wait.arrived[closing.branch] = me
        if len(wait.arrived) < wait.width:
            return
        del self._joins[(child, closing.split)]
        frames = record.foreach_stack
        if self.graph[closing.split.split("/")[0]].foreach_param is not None:
            frames = frames[:-1]
        parents = [wait.arrived[i] for i in range(wait.width)]
        await self._launch(Ready(child, parents, frames, ready.splits[:-1]))
