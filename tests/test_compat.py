"""Metaflow code runs unchanged: the semantics flows written for Metaflow rely on (issue 13).

Each test runs a real flow through the CLI (or `python flow.py`) and reads it back with the client.
"""

from __future__ import annotations

import platform
import time
from datetime import datetime
from pathlib import Path

import pytest
from conftest import run_cli

import aflow
from aflow.client import core as client_core

COMPAT = Path(__file__).resolve().parent / "compat_flows"


def latest(flow: str) -> aflow.Run:
    run = aflow.Flow(flow).latest_run
    assert run is not None
    return run


# -- 1. @catch and @timeout -------------------------------------------------------------------


def test_catch_sets_none_on_success_and_keeps_what_the_step_set(store_root: Path) -> None:
    started = time.monotonic()
    result = run_cli("run", str(COMPAT / "catch_flow.py"))
    assert result.returncode == 0, result.stderr
    assert time.monotonic() - started < 40  # the 60 s sleep was stopped by @timeout
    run = latest("CatchCompatFlow")
    assert run.successful
    join = run["join"].task.data
    assert join.results == [1, 3]  # `[i.res for i in inputs if not i.failure]`
    assert join.kept == [10, 20, 30]  # set before the raise, kept
    tasks = {t.data.input if "input" in t else t.data.before: t for t in run["work"]}
    failed = tasks[20]
    caught = failed.data.failure
    assert caught.type == "__main__.Boom" and caught.exception == "no 2"
    assert "raise Boom" in caught.traceback and "raise Boom" in str(caught)
    assert tasks[10].data.failure is None
    # Recorded in the same attempt, and the task counts as done: it has no exception of its own.
    assert failed.current_attempt == 0 and failed.successful and failed.exception is None
    assert "res" not in failed.data

    slow = run["slow"].task
    assert slow.data.timed_out.type == "aflow.exception.TimeoutException"
    assert slow.data.progress == "started" and slow.current_attempt == 0
    assert "@catch: step 'slow' failed" in result.stderr + result.stdout

    retried = run["retried"].task
    assert retried.current_attempt == 1 and retried.data.seen_attempt == 1
    assert retried.data.late.type == "builtins.ValueError"
    assert retried.data.late.exception == "attempt 1 fails"


# -- 4, 10, 11, 12, 13, 14: current, the client's names, lineage, metadata, logs ---------------


def test_current_client_names_and_lineage(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("AFLOW_DATASTORE_ROOT", raising=False)
    monkeypatch.setenv("AFLOW_USER", "ada")
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    root = tmp_path / "their-store"
    result = run_cli(
        "run", str(COMPAT / "lineage_flow.py"), "--datastore-root", str(root), cwd=elsewhere
    )
    assert result.returncode == 0, result.stderr
    assert not (elsewhere / ".aflow").exists()

    # What metadata() and namespace() set for the process, undone after the test.
    monkeypatch.setattr(client_core, "_chosen_store", None)
    monkeypatch.setattr(client_core, "_namespace", client_core._UNSET)
    assert aflow.metadata(f"local@{root}") == f"local@{root}"
    assert aflow.get_metadata() == f"local@{root}"
    assert aflow.default_namespace() == "user:ada"
    assert aflow.get_namespace() == "user:ada"
    run = latest("LineageFlow")
    start = run["start"].task.data
    assert start.parameter_names == ["alpha"]
    assert start.username == "ada" and start.namespace == "user:ada" and start.same_current
    join_task = run["join"].task
    join = join_task.data
    assert join.seen_run == run.id and join.latest == run.id  # 11: the run's own store
    assert join.where == f"local@{root}" and join.me == join_task.pathspec

    # 12: navigation and lineage
    assert run.parent.pathspec == "LineageFlow" and run.path_components == ["LineageFlow", run.id]
    assert join_task.parent.pathspec == f"LineageFlow/{run.id}/join"
    assert join_task.parent.parent == run
    assert join_task.path_components == ["LineageFlow", run.id, "join", join_task.id]
    work = list(run["work"])
    assert sorted(t.pathspec for t in join_task.parent_tasks) == sorted(t.pathspec for t in work)
    assert [t.pathspec for t in run["start"].task.child_tasks] == [t.pathspec for t in work]
    assert [t.pathspec for t in work[0].child_tasks] == [join_task.pathspec]
    assert [s.id for s in run["work"].child_steps] == ["join"]
    assert [s.id for s in join_task.parent.child_steps] == ["end"]
    assert [s.id for s in run["join"].parent_steps] == ["work"]
    assert run.origin_pathspec is None and join_task.origin_pathspec is None
    other = aflow.Task(join_task.pathspec, _namespace_check=False)
    assert other == join_task

    # 13: metadata
    meta = join_task.metadata_dict
    assert meta["attempt"] == "0" and meta["python_version"] == platform.python_version()
    assert meta["ds-type"] == "local" and "origin-run-id" not in meta
    assert [m.value for m in join_task.metadata if m.type == "attempt"] == ["0"]

    # 14: loglines as (datetime, text)
    lines = list(work[1].loglines("stdout"))
    assert [text for _, text in lines] == ["square 4"]
    assert isinstance(lines[0][0], datetime)


def test_resumed_run_knows_its_origin(store_root: Path, tmp_path: Path, monkeypatch) -> None:
    marker = tmp_path / "marker"
    monkeypatch.setenv("AFLOW_TEST_MARKER", str(marker))
    flow = COMPAT / "resume_flow.py"
    assert run_cli("run", str(flow)).returncode == 1
    first = latest("ResumeCompatFlow")
    marker.write_text("go")
    result = run_cli("resume", str(flow))
    assert result.returncode == 0, result.stderr
    run = latest("ResumeCompatFlow")
    assert run.id != first.id
    assert run.origin_pathspec == f"ResumeCompatFlow/{first.id}"
    assert run["middle"].origin_pathspec == f"ResumeCompatFlow/{first.id}/middle"
    start = run["start"].task
    origin_start = first["start"].task
    assert start.origin_pathspec == origin_start.pathspec
    meta = start.metadata_dict
    assert meta["origin-run-id"] == first.id and meta["origin-task-id"] == origin_start.id
    middle = run["middle"].task
    assert middle.origin_pathspec is None
    assert middle.metadata_dict["origin-run-id"] == first.id
    assert "origin-task-id" not in middle.metadata_dict


def test_a_task_killed_by_a_signal_says_so(store_root: Path) -> None:
    result = run_cli("run", str(COMPAT / "crash_flow.py"))
    assert result.returncode == 1
    assert "killed by SIGSEGV" in result.stdout + result.stderr
    task = latest("CrashFlow")["start"].task
    assert task.finished and not task.successful
    assert task.exception.type == "aflow.exception.TaskKilled"
    assert "killed by SIGSEGV" in task.exception.exception
    assert "killed by SIGSEGV" in task.stderr and "about to crash" in task.stdout
