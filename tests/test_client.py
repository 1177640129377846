"""The client API read back over real runs: Flow, Run, Step, Task, DataArtifact, namespace, AsyncFlow."""

from __future__ import annotations

import shutil
import time
from pathlib import Path

import anyio
import pytest

from aflow import AsyncFlow, DataArtifact, Flow, Run, Task, get_namespace, namespace
from aflow.client import NamespaceMismatch, TaskException, core
from aflow.exception import AflowException, AflowNotFound
from aflow.frames import Frame
from aflow.stores.local import LocalFiles
from aflow.stores.records import RunRecord, run_record_key


@pytest.fixture(autouse=True)
def fresh_namespace(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(core, "_namespace", core._UNSET)


@pytest.fixture
def runs(inspect_runs: tuple[Path, str, str]) -> tuple[Path, str, str]:
    return inspect_runs


@pytest.fixture
def store(inspect_store: Path) -> Path:
    return inspect_store


def write_runs(root: Path, flow: str, count: int, **fields: object) -> list[str]:
    """Run records written straight into the store (no tasks): a store with history, made fast."""
    files = LocalFiles(root)
    ids = [str(1_700_000_000_000_000 + i) for i in range(count)]
    for run_id in ids:
        record = RunRecord(flow=flow, run_id=run_id, started_at=time.time(), **fields)  # type: ignore[arg-type]
        files.put(run_record_key(flow, run_id), [record.pack()])
    return ids


def test_flow_runs_newest_first_and_latest(store: Path, runs: tuple[Path, str, str]) -> None:
    _, ok_id, bad_id = runs
    flow = Flow("InspectFlow")
    assert [r.id for r in flow.runs()] == [bad_id, ok_id]
    assert [r.id for r in flow] == [bad_id, ok_id]
    assert flow.latest_run == Run(f"InspectFlow/{bad_id}")
    assert flow.latest_successful_run is not None and flow.latest_successful_run.id == ok_id
    assert flow["latest"].id == bad_id
    assert [f.id for f in Flow.list()] == ["InspectFlow"]


def test_run_properties_and_data(store: Path, runs: tuple[Path, str, str]) -> None:
    run = Run(f"InspectFlow/{runs[1]}")
    assert run.successful and run.finished and run.status == "done"
    assert run.data.squares == [0, 1, 4]
    assert run.created_at is not None and run.finished_at is not None
    assert run.created_at <= run.finished_at
    assert run.tags == frozenset({f"user:{core.current_user()}"}) == run.system_tags
    assert [s.id for s in run] == ["end", "join", "work", "start"]  # newest first, as in Metaflow
    assert "work" in run and "nope" not in run


def test_steps_tasks_and_artifacts(store: Path, runs: tuple[Path, str, str]) -> None:
    run = Run(f"InspectFlow/{runs[1]}")
    tasks = list(run["work"])
    assert [t.index for t in tasks] == [0, 1, 2]
    # The engine's Frame, the same 4 fields the task record carries (the client once built its own
    # 3-field frame without the items digest).
    (frame,) = tasks[2].foreach_stack
    record = anyio.run(tasks[2]._core.record_or_none)
    assert isinstance(frame, Frame) and record is not None and frame == record.foreach_stack[0]
    assert frame[:3] == ("start", 2, 3) and isinstance(frame.items, str)
    assert tasks[2].data.square == 4 and tasks[2]["square"].data == 4
    assert run["start"].task is not None and run["start"].task.index is None
    task = Task(tasks[1].pathspec)
    assert task == tasks[1] and task.successful and task.finished and task.exception is None
    assert task.stdout == "work 1\n" and task.stderr == "warn 1\n"
    assert [(ln.stream, ln.text) for ln in task.loglines()] == [
        ("stdout", "work 1"),
        ("stderr", "warn 1"),
    ]
    names = {a.id for a in task.artifacts}
    assert {"square", "items", "big", "width", "fail"} <= names
    big = run["start"].task["big"]  # type: ignore[index]
    assert big.size > 4096 and len(big.sha) == 64 and big.data == b"x" * 4096
    assert DataArtifact(f"{task.pathspec}/square").data == 1
    assert "square" in task and "nope" not in task.data


def test_failed_run_explains_itself(store: Path, runs: tuple[Path, str, str]) -> None:
    run = Run(f"InspectFlow/{runs[2]}")
    assert run.status == "failed" and run.finished and not run.successful
    assert "bad item 1" in (run.error or "")
    with pytest.raises(AflowException, match=r"has no end step data \(failed"):
        run.data  # noqa: B018
    # Item 1 raised; its siblings may have ended first or been stopped (TaskTerminated) after it,
    # whichever a loaded machine makes it, so the task is picked by its index, not by position.
    failed = [t for t in run["work"] if t.index == 1]
    assert not failed[0].successful
    exc = failed[0].exception
    assert isinstance(exc, TaskException) and exc.type == "builtins.ValueError"
    assert exc.exception == "bad item 1"
    assert "raise ValueError" in exc.traceback
    assert "Traceback" in failed[0].stderr


def test_unknown_things_are_clear_errors(store: Path, runs: tuple[Path, str, str]) -> None:
    with pytest.raises(AflowNotFound, match="no run InspectFlow/123 in"):
        Run("InspectFlow/123")
    with pytest.raises(AflowNotFound, match="no flow named 'Nope'"):
        Run("Nope/123")
    with pytest.raises(KeyError, match=r"has no step 'nope' \(its steps: start, work, join, end"):
        Run(f"InspectFlow/{runs[1]}")["nope"]
    with pytest.raises(KeyError, match="has no task '99'"):
        Task(f"InspectFlow/{runs[1]}/work/99")
    with pytest.raises(AflowException, match="expected a pathspec like Flow/run_id"):
        Run("InspectFlow")
    with pytest.raises(AflowNotFound, match=r"no runs of Nope in .* \(flows there: InspectFlow"):
        Flow("Nope")


def test_async_twin(store: Path, runs: tuple[Path, str, str]) -> None:
    async def main() -> None:
        flow = AsyncFlow("InspectFlow")
        latest = await flow.latest_run()
        assert latest is not None and latest.id == runs[2] and await latest.status() == "failed"
        ok = await flow.latest_successful_run()
        assert ok is not None and await ok.data("squares") == [0, 1, 4]
        assert [r.id async for r in flow.runs()] == [runs[2], runs[1]]
        task = await (await ok.step("work")).task("3")
        assert task is not None and await task.artifact("square") == 1
        assert await task.output("stdout") == "work 1\n"

    anyio.run(main)


def test_datastore_root_argument(store: Path, runs: tuple[Path, str, str], monkeypatch) -> None:
    monkeypatch.setenv("AFLOW_DATASTORE_ROOT", str(store.parent / "elsewhere"))
    with pytest.raises(AflowNotFound, match="is empty: run a flow first"):
        Flow("InspectFlow")
    assert Flow("InspectFlow", datastore_root=str(store)).latest_run is not None
    assert Run(f"InspectFlow/{runs[1]}", datastore_root=str(store)).successful


def test_namespace_filters_by_user_and_tags(store_root: Path, monkeypatch) -> None:
    monkeypatch.setenv("AFLOW_USER", "alice")
    alice = write_runs(store_root, "TeamFlow", 2, user="alice", status="done", tags=["nightly"])
    bob = [str(1_800_000_000_000_000 + i) for i in range(2)]
    files = LocalFiles(store_root)
    for run_id in bob:
        files.put(run_record_key("TeamFlow", run_id), [RunRecord("TeamFlow", run_id, user="bob").pack()])
    assert get_namespace() == "user:alice"
    assert [r.id for r in Flow("TeamFlow").runs()] == alice[::-1]
    assert [r.id for r in Flow("TeamFlow").runs("nightly")] == alice[::-1]
    assert list(Flow("TeamFlow").runs("weekly")) == []
    with pytest.raises(NamespaceMismatch, match=r"namespace\(None\) shows every run"):
        Run(f"TeamFlow/{bob[0]}")
    namespace(None)
    assert [r.id for r in Flow("TeamFlow").runs()] == [*bob[::-1], *alice[::-1]]
    assert Run(f"TeamFlow/{bob[0]}").tags == {"user:bob"}
    namespace("user:bob")
    assert [r.id for r in Flow("TeamFlow").runs()] == bob[::-1]


def test_dead_run_shows_as_dead(store_root: Path) -> None:
    (run_id,) = write_runs(store_root, "DeadFlow", 1, user=core.current_user(), heartbeat_at=1.0)
    run = Run(f"DeadFlow/{run_id}")
    assert run.status == "dead" and not run.finished and not run.successful
    with pytest.raises(AflowException, match=r"no end step data \(dead"):
        run.data  # noqa: B018


def test_listing_a_thousand_runs_loads_no_artifact(
    store_root: Path, runs: tuple[Path, str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    shutil.copytree(runs[0], store_root)  # two real runs, with artifacts in data/
    write_runs(store_root, "InspectFlow", 1000, user=core.current_user(), status="done")
    reads: list[str] = []
    real_get, real_range = LocalFiles.get, LocalFiles.get_range

    def get(self: LocalFiles, key: str):  # type: ignore[no-untyped-def]
        reads.append(key)
        return real_get(self, key)

    def get_range(self: LocalFiles, key: str, start: int, length: int) -> bytes:
        reads.append(key)
        return real_range(self, key, start, length)

    monkeypatch.setattr(LocalFiles, "get", get)
    monkeypatch.setattr(LocalFiles, "get_range", get_range)
    listed = [(r.id, r.status, r.tags, r.created_at) for r in Flow("InspectFlow").runs()]
    assert len(listed) == 1002  # how fast: benchmarks, not a timed assertion that fails under load
    assert reads and all(k.endswith("/run.mpk") for k in reads)
    assert len(reads) <= 2 * 1002  # each record read once (a finished run's record is not re-read)
    reads.clear()
    assert Flow("InspectFlow").latest_run is not None
    assert len(reads) <= 8  # the latest run reads only the first page of records
