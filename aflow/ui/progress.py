"""Each step's state and task counts, worked out from the graph and the task records read so far.

The store holds a record only for a task that has ended, so how many tasks a step will have comes
from the graph: one per task of the step before it, the sum of the foreach widths after a foreach
step, and one per task of the split a join closes. A step is `pending` until it can start, `running`
while the run lives and its tasks are not all in, then `done`, `failed`, `partial` (the run ended
first) or `not-run`. Pure functions: no store, no HTML.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from aflow.ui.reader import RunSnapshot, TaskState


@dataclass(frozen=True)
class StepProgress:
    name: str
    type: str  # start, linear, split, foreach, join, end
    state: str  # pending | running | done | failed | stopped | partial | not-run
    done: int  # including those whose failure @catch recorded
    failed: int
    retrying: int
    expected: int | None  # None while the steps before it have not said how many
    stopped: int = 0  # stopped by the engine (siblings of a failure, a cancelled run): no failure
    caught: int = 0  # done, their failure recorded by @catch

    @property
    def label(self) -> str:
        """`412/1000` (done of expected), or just the done count while the total is unknown."""
        return f"{self.done:,}/{self.expected:,}" if self.expected is not None else f"{self.done:,}"


def predecessors(steps: dict[str, dict[str, Any]]) -> dict[str, list[str]]:
    before: dict[str, list[str]] = {s: [] for s in steps}
    for name, info in steps.items():
        for nxt in info.get("next", []):
            before.setdefault(nxt, []).append(name)
    return before


def step_progress(snapshot: RunSnapshot) -> dict[str, StepProgress]:
    """Every step of the run's graph (in its order), with its state and counts."""
    steps: dict[str, dict[str, Any]] = snapshot.record.graph.get("steps", {})
    before = predecessors(steps)
    tasks = snapshot.steps
    expected: dict[str, int | None] = {}
    out: dict[str, StepProgress] = {}

    def expect(name: str, seen: frozenset[str] = frozenset()) -> int | None:
        if name in expected:
            return expected[name]
        if name in seen:
            return None  # a cycle in a damaged record: give up rather than loop
        seen = seen | {name}
        info = steps.get(name, {})
        parents = before.get(name, [])
        n: int | None
        if not parents:
            n = 1
        elif info.get("type") == "join":
            split = _closed_split(steps, parents)
            n = expect(split, seen) if split else None
        else:
            parent = parents[0]
            if steps.get(parent, {}).get("type") == "foreach":
                n = _foreach_width(tasks.get(parent, []), expect(parent, seen))
            else:
                n = expect(parent, seen)
        expected[name] = n
        return n

    def progress(name: str) -> StepProgress:
        if name in out:
            return out[name]
        mine = tasks.get(name, [])
        statuses = [t.status for t in mine]
        done = sum(st in ("done", "caught") for st in statuses)
        failed = statuses.count("failed")
        retrying = statuses.count("retrying")
        total = expect(name)
        ready = all(progress(p).state == "done" for p in before.get(name, []) if p != name)
        out[name] = StepProgress(
            name,
            steps.get(name, {}).get("type", ""),
            _state(snapshot.status, total, done, failed, len(mine), ready, "stopped" in statuses),
            done,
            failed,
            retrying,
            total,
            statuses.count("stopped"),
            statuses.count("caught"),
        )
        return out[name]

    for name in steps:
        progress(name)
    return {name: out[name] for name in steps}


def _closed_split(steps: dict[str, dict[str, Any]], parents: list[str]) -> str | None:
    """The split (or foreach) a join closes: the innermost split its inputs sit in."""
    inner = steps.get(parents[0], {}).get("split_parents") or []
    return inner[-1] if inner else None


def _foreach_width(split_tasks: list[TaskState], splits_expected: int | None) -> int | None:
    """The tasks a foreach step's children make: the sum of its tasks' widths, once all are in."""
    ended = [t for t in split_tasks if t.ended_ok]
    if splits_expected is None or len(ended) < splits_expected:
        return None
    return sum(int(t.record.num_splits or 0) for t in ended if t.record is not None)


def _state(
    run: str, expected: int | None, done: int, failed: int, seen: int, ready: bool, stopped: bool
) -> str:
    if failed:
        return "failed"
    if stopped and run != "running":
        return "stopped"
    if expected is not None and expected > 0 and done >= expected:
        return "done"
    if run == "running":
        return "running" if seen or ready else "pending"
    if seen == 0:
        return "not-run"
    return "done" if expected is None and run == "done" else "partial"


def running_since(snapshot: RunSnapshot, progress: dict[str, StepProgress]) -> dict[str, float]:
    """For each running step, when it could start: its inputs' last end (the run's start for the
    first step). The store says nothing of a task until it ends, so this is what a timeline can
    show of the tasks still in flight."""
    steps: dict[str, dict[str, Any]] = snapshot.record.graph.get("steps", {})
    before = predecessors(steps)
    out = {}
    for name, p in progress.items():
        if p.state != "running":
            continue
        ends = [
            t.record.finished_at
            for parent in before.get(name, [])
            for t in snapshot.steps.get(parent, [])
            if t.record is not None
        ]
        out[name] = max(ends, default=snapshot.record.started_at)
    return out
