"""The scheduler's rules, each tested in-process: a MockBackend decides how every task attempt ends
and a MemoryStore holds the run, so no process is forked and each test takes milliseconds.

Retry (and only_platform_errors), @catch, @timeout, joins and their manifest, --max-num-splits, the
first failure stopping its siblings, the worker bound, and the events a run emits.
"""

from __future__ import annotations

import os
import subprocess
from collections.abc import Callable
from typing import Any

import anyio
import msgpack
import pytest

import aflow
from aflow import FlowSpec, catch, retry, step, timeout
from aflow.backends.errors import JobRefused, PlatformError
from aflow.backends.mock import Done, Failed, Hang, Lost, MockBackend, Outcome
from aflow.engine import events as ev
from aflow.engine.scheduler import MANIFEST_THRESHOLD
from aflow.engine.wire import TaskSpec
from aflow.exception import TaskTerminated
from aflow.stores.artifacts import blob_key
from aflow.stores.memory import MemoryStore
from aflow.stores.records import TaskRecord, task_record_key


class Linear(FlowSpec):
    @step
    def start(self):
        self.next(self.middle)

    @retry(times=2, minutes_between_retries=0)
    @step
    def middle(self):
        self.next(self.end)

    @step
    def end(self):
        pass


class OnlyPlatform(FlowSpec):
    @retry(times=2, minutes_between_retries=0, only_platform_errors=True)
    @step
    def start(self):
        self.next(self.end)

    @step
    def end(self):
        pass


class Caught(FlowSpec):
    @catch(var="error")
    @retry(times=1, minutes_between_retries=0)
    @step
    def start(self):
        self.next(self.end)

    @step
    def end(self):
        pass


class Timed(FlowSpec):
    @retry(times=1, minutes_between_retries=0)
    @timeout(seconds=0.05)
    @step
    def start(self):
        self.next(self.end)

    @step
    def end(self):
        pass


class Fanout(FlowSpec):
    @step
    def start(self):
        self.items = []
        self.next(self.work, foreach="items")

    @step
    def work(self):
        self.next(self.join)

    @step
    def join(self, inputs):
        self.next(self.end)

    @step
    def end(self):
        pass


class Nested(FlowSpec):
    @step
    def start(self):
        self.next(self.a, self.b)

    @step
    def a(self):
        self.outer = []
        self.next(self.inner, foreach="outer")

    @step
    def inner(self):
        self.next(self.inner_join)

    @step
    def inner_join(self, inputs):
        self.next(self.branches)

    @step
    def b(self):
        self.next(self.branches)

    @step
    def branches(self, inputs):
        self.next(self.end)

    @step
    def end(self):
        pass


@pytest.fixture(autouse=True)
def no_processes(monkeypatch: pytest.MonkeyPatch) -> None:
    """Nothing here may fork or spawn: the point of the mock backend."""

    def refuse(*args: object, **kwargs: object) -> Any:
        raise AssertionError("a scheduler rule test started a process")

    monkeypatch.setattr(os, "fork", refuse)
    monkeypatch.setattr(subprocess, "Popen", refuse)


def by_step(**outcomes: Callable[[TaskSpec], Outcome]) -> Callable[[TaskSpec], Outcome]:
    """A handler: the named steps' outcomes from their functions, every other step done."""

    def handler(task: TaskSpec) -> Outcome:
        decide = outcomes.get(task.step)
        return decide(task) if decide else Done()

    return handler


def run(
    flow: type[FlowSpec], handler: Callable[[TaskSpec], Any], **options: Any
) -> tuple[aflow.Run, MockBackend, MemoryStore, list[object]]:
    """Run `flow` on a fresh MemoryStore and MockBackend; its Run, the backend, the store, its events."""
    store = MemoryStore()
    backend = MockBackend(store, handler)
    seen: list[object] = []

    async def main() -> aflow.Run:
        with anyio.fail_after(10):
            async with aflow.start_flow(flow, store=store, backend=backend, **options) as running:
                async for event in running.events():
                    seen.append(event)
            return await running.wait()

    return anyio.run(main), backend, store, seen


def record(
    store: MemoryStore, run_id: str, flow: str, step: str, task_id: str, attempt: int
) -> TaskRecord:
    key = task_record_key(flow, run_id, step, task_id, attempt)
    return TaskRecord.unpack(store.files.get(key))


def test_a_linear_run_on_the_mock_backend_keeps_its_artifacts() -> None:
    def end(task: TaskSpec) -> Outcome:
        return Done({"answer": 42, "big": b"x" * 4096}, lines=["bye"])

    result, backend, _, seen = run(Linear, by_step(end=end))
    assert result.successful and result.data.answer == 42 and len(result.data.big) == 4096
    assert [a.step for a in backend.attempts] == ["start", "middle", "end"]
    assert all(a.ended == "done" for a in backend.attempts)
    assert any(isinstance(e, ev.OutputLine) and e.line == "bye" for e in seen)
    assert isinstance(seen[0], ev.RunStarted) and isinstance(seen[-1], ev.RunFinished)
    assert seen[-1].status == "done"


def test_retry_reruns_a_failed_step_until_it_succeeds() -> None:
    def middle(task: TaskSpec) -> Outcome:
        return Failed(ValueError("flaky")) if task.attempt < 2 else Done()

    result, backend, store, seen = run(Linear, by_step(middle=middle))
    assert result.successful
    assert [a.spec.attempt for a in backend.attempts if a.step == "middle"] == [0, 1, 2]
    failed = [e for e in seen if isinstance(e, ev.TaskFailed)]
    assert [(e.attempt, e.retrying) for e in failed] == [(0, True), (1, True)]
    assert "ValueError: flaky" in failed[0].message
    assert record(store, result.id, "Linear", "middle", "2", 2).ok


def test_retry_gives_up_after_its_times_and_fails_the_run() -> None:
    result, backend, _, seen = run(Linear, by_step(middle=lambda t: Failed(KeyError("gone"))))
    assert not result.successful and result.status == "failed"
    assert len(backend.ended("middle", "failed")) == 3  # the first try and two retries
    assert not [a for a in backend.attempts if a.step == "end"]
    failed = [e for e in seen if isinstance(e, ev.TaskFailed)]
    assert [e.retrying for e in failed] == [True, True, False]
    assert "KeyError" in seen[-1].error


def test_only_platform_errors_never_retries_the_steps_own_exception() -> None:
    result, backend, _, _ = run(OnlyPlatform, by_step(start=lambda t: Failed(ValueError("mine"))))
    assert not result.successful
    assert len(backend.ended("start", "failed")) == 1


def lost_by_raising() -> Outcome:
    raise PlatformError("the node went away")


@pytest.mark.parametrize(
    "lose",
    [
        lambda: Lost("the pod was evicted"),
        lambda: Failed(TaskTerminated("stopped by SIGTERM")),
        lost_by_raising,
    ],
    ids=["no-record", "terminated-record", "backend-raised"],
)
def test_only_platform_errors_retries_a_lost_or_terminated_task(lose: Callable[[], Outcome]) -> None:
    def start(task: TaskSpec) -> Outcome:
        return lose() if task.attempt == 0 else Done()

    result, backend, _, seen = run(OnlyPlatform, by_step(start=start))
    assert result.successful
    assert [a.ended for a in backend.attempts if a.step == "start"][1] == "done"
    failed = [e for e in seen if isinstance(e, ev.TaskFailed)]
    assert len(failed) == 1 and failed[0].retrying


def test_catch_records_the_last_failure_after_the_retries_and_goes_on() -> None:
    def start(task: TaskSpec) -> Outcome:
        if task.fallback is not None:
            return Done({"error": task.fallback["error"]["message"]})
        return Failed(RuntimeError(f"attempt {task.attempt}"))

    result, backend, _, _ = run(Caught, by_step(start=start))
    assert result.successful
    starts = [a.spec for a in backend.attempts if a.step == "start"]
    assert [(s.attempt, s.fallback is not None) for s in starts] == [(0, False), (1, False), (2, True)]
    assert starts[2].fallback is not None and starts[2].fallback["var"] == "error"
    assert "RuntimeError: attempt 1" in starts[2].fallback["error"]["message"]
    assert result["start"].task.data.error == "RuntimeError: attempt 1"
    assert [a.step for a in backend.attempts][-1] == "end"


def test_a_failed_catch_fallback_fails_the_run() -> None:
    def start(task: TaskSpec) -> Outcome:
        return Failed(OSError("even the fallback")) if task.fallback else Failed(ValueError("x"))

    result, _, _, seen = run(Caught, by_step(start=start))
    assert not result.successful
    assert "OSError: even the fallback" in seen[-1].error


def test_timeout_stops_a_hanging_attempt_and_counts_as_a_failure() -> None:
    def start(task: TaskSpec) -> Outcome:
        return Hang() if task.attempt == 0 else Done()

    result, backend, _, seen = run(Timed, by_step(start=start))
    assert result.successful
    assert [a.ended for a in backend.attempts if a.step == "start"] == ["cancelled", "done"]
    failed = [e for e in seen if isinstance(e, ev.TaskFailed)]
    assert len(failed) == 1 and "@timeout" in failed[0].message and failed[0].retrying


def test_timeout_on_every_attempt_fails_the_run() -> None:
    result, backend, _, seen = run(Timed, by_step(start=lambda t: Hang()))
    assert not result.successful
    assert [a.ended for a in backend.attempts] == ["cancelled", "cancelled"]
    assert "TimeoutException" in seen[-1].error


def fan_out(width: int) -> Callable[[TaskSpec], Outcome]:
    return lambda task: Done({"items": list(range(width))}, num_splits=width)


@pytest.mark.parametrize("width", [3, MANIFEST_THRESHOLD + 8])
def test_a_join_waits_for_every_child_and_gets_them_in_order(width: int) -> None:
    result, backend, store, seen = run(Fanout, by_step(start=fan_out(width)))
    assert result.successful
    work = [a.spec for a in backend.attempts if a.step == "work"]
    assert sorted(s.foreach_stack[-1][1] for s in work) == list(range(width))
    assert all(s.foreach_stack[-1][0] == "start" and s.foreach_stack[-1][2] == width for s in work)
    assert all(s.parents == ["start/1/0"] for s in work)
    (join,) = [a.spec for a in backend.attempts if a.step == "join"]
    assert join.foreach_stack == []
    index_of = {f"work/{s.task_id}/0": s.foreach_stack[-1][1] for s in work}
    if width <= MANIFEST_THRESHOLD:
        parents = join.parents
        assert join.parents_manifest is None
    else:  # a wide join gets its parents as a manifest in the store, not in its spec
        assert join.parents == [] and join.parents_manifest
        parents = msgpack.unpackb(store.files.get(blob_key("Fanout", join.parents_manifest)))
    assert [index_of[p] for p in parents] == list(range(width))
    started = [e for e in seen if isinstance(e, ev.ForeachStarted)]
    assert [(e.width, e.body) for e in started] == [(width, ("work",))]


def test_nested_splits_join_in_their_own_frames() -> None:
    result, backend, _, _ = run(Nested, by_step(a=fan_out(2)))
    assert result.successful
    inner = [a.spec for a in backend.attempts if a.step == "inner"]
    assert len(inner) == 2 and all(len(s.foreach_stack) == 1 for s in inner)
    (inner_join,) = [a.spec for a in backend.attempts if a.step == "inner_join"]
    (branches,) = [a.spec for a in backend.attempts if a.step == "branches"]
    (a,) = [a.spec for a in backend.attempts if a.step == "a"]
    (b,) = [a.spec for a in backend.attempts if a.step == "b"]
    assert inner_join.foreach_stack == [] and len(inner_join.parents) == 2
    # The static join lists its branches in the order of self.next(self.a, self.b).
    assert branches.parents == [f"inner_join/{inner_join.task_id}/0", f"b/{b.task_id}/0"]
    assert a.parents == b.parents == ["start/1/0"]


def test_max_num_splits_fails_a_wider_foreach_before_any_child_runs() -> None:
    result, backend, _, seen = run(Fanout, by_step(start=fan_out(5)), max_num_splits=4)
    assert not result.successful
    assert [a.step for a in backend.attempts] == ["start"]
    assert "fans out into 5 tasks, more than --max-num-splits 4" in seen[-1].error
    result, _, _, _ = run(Fanout, by_step(start=fan_out(4)), max_num_splits=4)
    assert result.successful


def test_the_first_failure_stops_its_running_siblings() -> None:
    hanging: list[TaskSpec] = []
    all_running: list[anyio.Event] = []

    async def work(task: TaskSpec) -> Outcome:
        if not all_running:
            all_running.append(anyio.Event())
        if task.foreach_stack[-1][1] == 2:
            await all_running[0].wait()  # fail only once every sibling is running
            return Failed(ValueError("child 2 failed"))
        hanging.append(task)
        if len(hanging) == 3:
            all_running[0].set()
        return Hang()

    def handler(task: TaskSpec) -> Any:
        return work(task) if task.step == "work" else fan_out(4)(task)

    result, backend, store, seen = run(Fanout, handler)
    assert not result.successful
    assert "child 2 failed" in seen[-1].error
    assert len(backend.ended("work", "failed")) == 1
    stopped = backend.ended("work", "cancelled")
    assert len(stopped) == 3 and not [a for a in backend.attempts if a.step == "join"]
    for attempt in stopped:  # the engine records each stopped sibling as stopped, not failed
        assert record(store, result.id, "Fanout", "work", attempt.spec.task_id, 0).status == "stopped"
    told = sorted(e.pathspec for e in seen if isinstance(e, ev.TaskStopped))
    assert told == sorted(a.spec.pathspec for a in stopped)


def test_max_workers_bounds_the_tasks_running_at_once() -> None:
    async def work(task: TaskSpec) -> Outcome:
        await anyio.sleep(0.002)
        return Done()

    def handler(task: TaskSpec) -> Any:
        return work(task) if task.step == "work" else fan_out(12)(task)

    result, backend, _, _ = run(Fanout, handler, max_workers=3)
    assert result.successful and backend.most_running == 3
    assert len(backend.ended("work", "done")) == 12


def test_a_backend_that_refuses_a_job_fails_the_run_with_its_message() -> None:
    def start(task: TaskSpec) -> Outcome:
        raise JobRefused("the queue 'q' does not exist: set AFLOW_BATCH_JOB_QUEUE")

    result, backend, _, seen = run(OnlyPlatform, by_step(start=start))
    assert not result.successful and backend.attempts[0].ended == "raised"
    assert len(backend.attempts) == 1  # a refusal is not a lost task: not retried
    assert seen[-1].error == "the queue 'q' does not exist: set AFLOW_BATCH_JOB_QUEUE"
