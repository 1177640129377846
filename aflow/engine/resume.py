"""Resume: a new run that reuses, by reference, every task of an origin run that it need not redo.

A task is identified across runs by its step and its foreach indices (static branches are steps of
their own). A task is reused when the origin run has a done task with the same identity and its step
is not being rerun. Steps are rerun from the step named on the command line, from any step whose
source code changed since the origin run, and everything after those; what the origin run never
finished runs anyway. Reusing a task writes one small record naming the same artifact blobs: no
artifact is copied.
"""

from __future__ import annotations

import dataclasses
import functools
import time
import warnings
from typing import Any

from aflow.engine.scheduler import Ready
from aflow.exception import AflowException, AflowNotFound, DamagedData, DamagedRecordWarning
from aflow.graph import FlowGraph
from aflow.stores.artifacts import blob_key
from aflow.stores.base import NotFound, ObjectStore, store_path
from aflow.stores.records import (
    RunRecord,
    TaskRecord,
    read_record,
    run_record_key,
    task_prefix,
    task_record_key,
)
from aflow.stores.transfer import gather

TaskKey = tuple[str, tuple[int, ...]]


async def latest_run_id(store: ObjectStore, flow: str, started_by_run: bool = False) -> str | None:
    """The newest run that has a readable record: a run folder without one (a run that could not
    start, e.g. on a full disk) is passed over, and a damaged record is named and passed over.
    `started_by_run`: the newest started with `run`, not a resume (what a resume picks by default,
    as in Metaflow)."""
    runs = sorted((n for n in await store.list(flow) if n.isdigit()), key=lambda r: (len(r), r))
    for run_id in reversed(runs):
        try:
            record = await read_record(store, RunRecord, run_record_key(flow, run_id))
        except NotFound:
            continue
        except DamagedData as e:
            warnings.warn(f"skipped a damaged record: {e}", DamagedRecordWarning, stacklevel=2)
            continue
        if started_by_run and record.origin_run_id is not None:
            continue
        return run_id
    return None


class ResumeOrigin:
    """The origin run's reusable tasks, and the rule for reusing them."""

    def __init__(
        self,
        store: ObjectStore,
        record: RunRecord,
        done: dict[TaskKey, list[TaskRecord]],
        rerun: set[str],
    ) -> None:
        self.store = store
        self.record = record
        self.done = done
        self.rerun = rerun
        self.new_run_id = ""  # set by the runner once the resumed run has its id

    @property
    def run_id(self) -> str:
        return self.record.run_id

    @classmethod
    async def load(
        cls,
        store: ObjectStore,
        graph: FlowGraph,
        origin_run_id: str | None,
        step: str | None,
        clone_changed: bool = False,
    ) -> ResumeOrigin:
        """`clone_changed`: reuse the finished tasks of steps whose code changed too, as Metaflow
        does (by default aflow reruns them, and what follows them)."""
        flow = graph.name
        if origin_run_id is None:
            origin_run_id = await latest_run_id(store, flow, started_by_run=True)
            if origin_run_id is None:
                raise AflowNotFound(f"no run of {flow} in {store.url} to resume")
        try:
            record = await read_record(store, RunRecord, run_record_key(flow, origin_run_id))
        except NotFound:
            raise AflowNotFound(f"no run {flow}/{origin_run_id} in {store.url} to resume") from None
        if record.liveness(time.time()) == "running":
            raise AflowException(
                f"run {flow}/{origin_run_id} is still running (its scheduler wrote a heartbeat "
                f"{time.time() - record.heartbeat_at:.0f}s ago): resuming it now would run its "
                "tasks twice; wait for it to end or stop it (Ctrl-C where it runs), then resume"
            )
        if step is not None and step not in graph.nodes:
            steps = ", ".join(graph.order)
            raise AflowException(f"cannot resume from '{step}': {flow} has no such step ({steps})")
        rerun: set[str] = set()
        old_steps = record.graph.get("steps", {})
        for node in graph:
            changed = old_steps.get(node.name, {}).get("code") != node.code_hash
            if step == node.name or (changed and not clone_changed):
                rerun |= graph.descendants(node.name)
        keep = [n for n in graph.order if n not in rerun]
        done = await _index_done_tasks(store, flow, origin_run_id, keep)
        return cls(store, record, done, rerun)

    async def clone(self, ready: Ready, task_id: str) -> TaskRecord | None:
        if ready.step in self.rerun:
            return None
        # A step inside a loop ran several times with the same identity: its runs are reused in
        # the order they ran (task ids grow as tasks start).
        runs = self.done.get((ready.step, tuple(f.index for f in ready.foreach_stack)))
        if not runs:
            return None
        found = runs.pop(0)
        run_id = self.new_run_id
        copy = dataclasses.replace(
            found,
            run_id=run_id,
            task_id=task_id,
            attempt=0,
            parents=ready.parents,
            parents_manifest=None,
            cloned_from=found.cloned_from or found.pathspec,
        )
        key = task_record_key(copy.flow, run_id, copy.step, task_id, 0)
        await self.store.put(key, [copy.pack()])
        return copy


async def _index_done_tasks(
    store: ObjectStore, flow: str, run_id: str, steps: list[str]
) -> dict[TaskKey, list[TaskRecord]]:
    """Every done task of the given steps of a run, by identity, oldest first (records read
    concurrently)."""

    async def latest(step: str, task_id: str) -> TaskRecord | None:
        prefix = task_prefix(flow, run_id, step, task_id)
        attempts = [int(n[:-4]) for n in await store.list(prefix) if n.endswith(".mpk")]
        if not attempts:
            return None
        try:
            return await read_record(store, TaskRecord, f"{prefix}/{max(attempts)}.mpk")
        except DamagedData as e:  # not reused: the resumed run does that task again
            warnings.warn(f"redoing a task: {e}", DamagedRecordWarning, stacklevel=2)
            return None

    calls = []
    for step in steps:
        for task_id in await store.list(f"{flow}/{run_id}/{step}"):
            calls.append(functools.partial(latest, step, task_id))
    records = [r for r in await gather(calls) if r is not None and r.ok]
    records = await _with_their_blobs(store, flow, records)
    done: dict[TaskKey, list[TaskRecord]] = {}
    for r in sorted(records, key=lambda r: int(r.task_id)):
        done.setdefault((r.step, tuple(f.index for f in r.foreach_stack)), []).append(r)
    return done


async def _with_their_blobs(
    store: ObjectStore, flow: str, records: list[TaskRecord]
) -> list[TaskRecord]:
    """The records whose every blob is still in the store (one existence check per distinct blob):
    a task whose blob is gone (`aflow verify --quarantine` moved a damaged one aside) is redone,
    which stores its value again."""
    digests = sorted({ref["k"] for r in records for ref in r.artifacts.values() if "k" in ref})
    present = await gather([functools.partial(store.exists, blob_key(flow, d)) for d in digests])
    missing = {d for d, there in zip(digests, present, strict=True) if not there}
    if not missing:
        return records
    kept = []
    for r in records:
        gone = [n for n, ref in r.artifacts.items() if ref.get("k") in missing]
        if gone:
            where = store_path(store.url, blob_key(flow, r.artifacts[gone[0]]["k"]))
            warnings.warn(
                f"redoing task {r.pathspec}: its artifact '{gone[0]}' is missing ({where})",
                DamagedRecordWarning,
                stacklevel=2,
            )
        else:
            kept.append(r)
    return kept


def origin_params(origin: ResumeOrigin, names: list[str]) -> dict[str, Any]:
    """The origin run's parameter values (as stored refs), which a resumed run keeps."""
    refs = origin.record.param_refs
    missing = [n for n in names if n not in refs]
    if missing:
        raise AflowException(
            f"run {origin.record.pathspec} has no stored value for {', '.join(missing)}: "
            "it was made by an older aflow or a different flow, and cannot be resumed"
        )
    return {n: refs[n] for n in names}


async def origin_configs(store: ObjectStore, origin: ResumeOrigin, flow_cls: type) -> dict[str, Any]:
    """The origin run's Config values, by config name: a resumed run evaluates its decorators
    and steps with the configuration its origin ran with."""
    import anyio

    from aflow.config import flow_configs
    from aflow.stores import artifacts as art

    refs = origin.record.param_refs
    values: dict[str, Any] = {}
    for attr, config in flow_configs(flow_cls).items():
        ref = refs.get(attr)
        if ref is None:
            values[config.name] = None
            continue
        blob = ref["v"] if "v" in ref else await store.get(art.blob_key(origin.record.flow, ref["k"]))
        values[config.name] = await anyio.to_thread.run_sync(art.deserialize, blob)
    return values
