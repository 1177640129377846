"""Where a task sits in its run and what is known about it: parent and child tasks, and Metaflow's
metadata entries (`attempt`, `origin-run-id`, `python_version`, ...), all derived from the records.

Async, like `aflow.client.core`, which it builds on; `aflow.client` wraps it for users.
"""

from __future__ import annotations

import functools
from typing import Any, NamedTuple

import msgpack

from aflow.client.core import AsyncRun, AsyncTask, _get_or_none
from aflow.stores import artifacts as art
from aflow.stores.records import TaskRecord
from aflow.stores.transfer import gather


class Metadata(NamedTuple):
    """One metadata entry of a task (Metaflow's `Metadata`): name, value, epoch ms, type."""

    name: str
    value: str
    created_at: int
    type: str
    task: Any


async def parent_pathspecs(task: AsyncTask) -> list[str]:
    """The tasks this one ran after (a join's: every branch), as pathspecs."""
    record = await task.record_or_none()
    if record is None:
        return []
    parents = record.parents
    if record.parents_manifest:
        data = await task.store.get(art.blob_key(task.flow, record.parents_manifest))
        parents = msgpack.unpackb(data, raw=False)
    return [f"{task.flow}/{task.run_id}/{p.rsplit('/', 1)[0]}" for p in parents]


def next_steps(run_record_graph: dict[str, Any], step: str) -> list[str]:
    return list(run_record_graph.get("steps", {}).get(step, {}).get("next", []))


def previous_steps(run_record_graph: dict[str, Any], step: str) -> list[str]:
    steps = run_record_graph.get("steps", {})
    return [name for name, info in steps.items() if step in info.get("next", [])]


async def child_pathspecs(task: AsyncTask) -> list[str]:
    """The tasks that ran after this one: those of the next steps that name it as a parent."""
    run = AsyncRun(task.store, task.flow, task.run_id)
    graph = (await run.record()).graph
    mine = f"{task.step}/{task.id}/"
    found: list[str] = []
    for step in next_steps(graph, task.step):
        children = await run.step(step)
        for child in await children.tasks():
            if any(p.startswith(mine) for p in await _parents_of(child)):
                found.append(child.pathspec)
    return found


async def _parents_of(task: AsyncTask) -> list[str]:
    return [p.split("/", 2)[2] + "/" for p in await parent_pathspecs(task)]


async def task_metadata(task: AsyncTask) -> list[Metadata]:
    """Metaflow's metadata entries, one set per attempt (or only the chosen attempt's)."""
    run = await AsyncRun(task.store, task.flow, task.run_id).record()
    attempts = [task.attempt] if task.attempt is not None else await task.attempts()
    keys = [f"{task._prefix}/{a}.mpk" for a in attempts]
    datas = await gather([functools.partial(_get_or_none, task.store, k) for k in keys])
    out: list[Metadata] = []
    for attempt, data in zip(attempts, datas, strict=True):
        record = TaskRecord.unpack(data) if data is not None else None
        when = int(1000 * (record.started_at if record else run.started_at))
        entries: dict[str, str] = {
            "attempt": str(attempt),
            "ds-type": run.datastore,
            "ds-root": task.store.url,
            "user": run.user or "",
            "runtime": "aflow",
        }
        if run.origin_run_id:
            entries["origin-run-id"] = run.origin_run_id
        if record is not None:
            entries["attempt_ok"] = "True" if record.ok else "False"
            entries["backend"] = record.backend
            if record.python_version:
                entries["python_version"] = record.python_version
            if record.job_id:
                entries["job-id"] = record.job_id
            if record.cloned_from:
                _flow, origin_run, _step, origin_task = record.cloned_from.split("/")
                entries["origin-run-id"] = origin_run
                entries["origin-task-id"] = origin_task
        for name, value in entries.items():
            kind = "internal_attempt_status" if name == "attempt_ok" else name
            out.append(Metadata(name, value, when, kind, None))
    return out
