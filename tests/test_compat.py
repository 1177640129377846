"""Metaflow code runs unchanged: the semantics flows written for Metaflow rely on (issue 13).

Each test runs a real flow through the CLI (or `python flow.py`) and reads it back with the client.
"""

from __future__ import annotations

import time
from pathlib import Path

from conftest import run_cli

import aflow

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
