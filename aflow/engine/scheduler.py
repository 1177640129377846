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

import hashlib
import itertools
import time
from dataclasses import dataclass, field
from typing import Any

import anyio
import msgpack

from aflow.backends.base import Backend, TaskSpec
from aflow.engine.events import EventBus, TaskFailed, TaskFinished, TaskStarted
from aflow.engine.task_logs import TaskLog
from aflow.exception import TaskFailed as TaskFailedError
from aflow.graph import FlowGraph
from aflow.stores.artifacts import ArtifactRef, blob_key
from aflow.stores.base import NotFound, ObjectStore
from aflow.stores.records import TaskRecord, task_log_key, task_record_key

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
    foreach_stack: list[list[Any]]
    splits: tuple[OpenSplit, ...]


@dataclass
class _JoinWait:
    width: int
    arrived: dict[int, str] = field(default_factory=dict)


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


class Scheduler:
    def __init__(
        self,
        graph: FlowGraph,
        ctx: RunContext,
        backend: Backend,
        store: ObjectStore,
        bus: EventBus,
        max_workers: int,
    ) -> None:
        self.graph = graph
        self.ctx = ctx
        self.backend = backend
        self.store = store
        self.bus = bus
        self.slots = anyio.Semaphore(max_workers)
        self._ids = itertools.count(1)
        self._joins: dict[tuple[str, str], _JoinWait] = {}
        self._tg: anyio.abc.TaskGroup | None = None
        self.failure: TaskFailedError | None = None
        self.end_task: str | None = None
        self.tasks_done = 0
        self.tasks_failed = 0

    async def run(self) -> None:
        """Run the flow to its end; raises TaskFailed for the first task that failed."""
        async with anyio.create_task_group() as tg:
            self._tg = tg
            await self._launch(Ready("start", [], [], ()))
        if self.failure is not None:
            raise self.failure
        if self._joins or self.end_task is None:
            # Validation should make this impossible; never report such a run as done.
            waiting = ", ".join(f"{join} (from {split})" for join, split in self._joins)
            raise RuntimeError(f"the run stopped before its end step; joins still waiting: {waiting}")

    async def _launch(self, ready: Ready) -> None:
        await self.slots.acquire()
        assert self._tg is not None
        self._tg.start_soon(self._task, ready, str(next(self._ids)))

    async def _task(self, ready: Ready, task_id: str) -> None:
        try:
            record = await self._execute(ready, task_id)
        except TaskFailedError as e:
            if self.failure is None:
                self.failure = e
            assert self._tg is not None
            self._tg.cancel_scope.cancel()
            return
        finally:
            self.slots.release()
        await self._advance(ready, record)

    async def _execute(self, ready: Ready, task_id: str) -> TaskRecord:
        ctx = self.ctx
        attempt = 0
        spec = TaskSpec(
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
            foreach_stack=ready.foreach_stack,
            initial_artifacts=ctx.param_artifacts if ready.step == "start" else {},
            param_names=ctx.param_names,
        )
        if len(ready.parents) > MANIFEST_THRESHOLD:
            spec.parents_manifest = await self._write_manifest(ready.parents)
        else:
            spec.parents = ready.parents
        log = TaskLog(spec.pathspec, self.bus)
        started = time.monotonic()
        self.bus.emit(TaskStarted(spec.pathspec, attempt))
        key = (ctx.flow_name, ctx.run_id, ready.step, task_id, attempt)
        try:
            outcome = await self.backend.run(spec, log)
        finally:
            with anyio.CancelScope(shield=True):  # a stopped task's output is kept too
                await log.save(self.store, task_log_key(*key))
        record = await self._read_record(task_record_key(*key))
        if outcome.returncode == 0 and record is not None and record.ok:
            self.tasks_done += 1
            self.bus.emit(TaskFinished(spec.pathspec, attempt, time.monotonic() - started))
            return record
        if record is not None and record.error:
            message = f"{record.error['type']}: {record.error['message']}"
            tb = record.error.get("traceback")
        else:
            message = outcome.reason or "the task ended without committing its record"
            tb = None
        self.tasks_failed += 1
        self.bus.emit(TaskFailed(spec.pathspec, attempt, message, tb))
        raise TaskFailedError(spec.pathspec, message, tb)

    async def _read_record(self, key: str) -> TaskRecord | None:
        try:
            return TaskRecord.unpack(await self.store.get(key))
        except NotFound:
            return None

    async def _write_manifest(self, parents: list[str]) -> str:
        data = msgpack.packb(parents)
        digest = hashlib.sha256(data).hexdigest()
        await self.store.put(blob_key(self.ctx.flow_name, digest), [data])
        return digest

    async def _advance(self, ready: Ready, record: TaskRecord) -> None:
        node = self.graph[ready.step]
        me = f"{record.step}/{record.task_id}/{record.attempt}"
        if node.type == "end":
            self.end_task = record.pathspec
            return
        if node.foreach_param is not None:
            width = record.num_splits or 0
            child = node.out_funcs[0]
            for i in range(width):
                frame = [ready.step, i, width, record.split_digest]
                split = OpenSplit(me, i, width)
                await self._launch(
                    Ready(child, [me], [*record.foreach_stack, frame], (*ready.splits, split))
                )
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
