"""The inspection commands, run as a user would: `aflow list runs|show|logs` and `python flow.py ...`."""

from __future__ import annotations

import re
import subprocess
import sys
import time
from pathlib import Path

import pytest
from conftest import FLOWS, run_cli, run_script

from aflow.stores.local import LocalFiles
from aflow.stores.records import RunRecord, run_record_key

FLOW = FLOWS / "inspect_flow.py"


@pytest.fixture
def runs(inspect_runs: tuple[Path, str, str]) -> tuple[Path, str, str]:
    return inspect_runs


@pytest.fixture
def store(inspect_store: Path) -> Path:
    return inspect_store


def ok(result: subprocess.CompletedProcess) -> str:
    assert result.returncode == 0, result.stderr
    return result.stdout


def user_error(result: subprocess.CompletedProcess, message: str) -> None:
    assert result.returncode == 1, result.stdout + result.stderr
    assert message in result.stderr
    assert "Traceback" not in result.stderr and len(result.stderr.strip().splitlines()) == 1


def test_list_runs_newest_first(store: Path, runs: tuple[Path, str, str]) -> None:
    _, ok_id, bad_id = runs
    out = ok(run_cli("list", "runs", str(FLOW)))
    lines = out.splitlines()
    assert "Run ID" in lines[0] and "Tasks done/failed/stopped" in lines[0] and "Flow" not in lines[0]
    assert bad_id in lines[1] and "failed" in lines[1] and re.search(r" \d/1/\d ", lines[1])
    assert ok_id in lines[2] and "done" in lines[2] and "6/0" in lines[2] and "user:" in lines[2]
    assert ok(run_script(FLOW, "list", "runs")) == out  # the Metaflow habit
    limited = ok(run_cli("list", "runs", "--flow", "InspectFlow", "--limit", "1"))
    assert bad_id in limited and ok_id not in limited and "1 of 2 runs shown" in limited


def test_list_every_flow_and_dead_runs(store_root: Path, runs: tuple[Path, str, str]) -> None:
    files = LocalFiles(store_root)
    record = RunRecord("GoneFlow", "1700000000000000", started_at=time.time() - 99, heartbeat_at=1.0)
    files.put(run_record_key("GoneFlow", record.run_id), [record.pack()])
    out = ok(run_cli("list", "runs"))
    assert out.splitlines()[0].startswith("Flow") and "GoneFlow" in out and "dead" in out
    assert "dead" in ok(run_cli("list", "runs", "GoneFlow"))


def test_show_the_dag(store: Path) -> None:
    text = ok(run_cli("show", str(FLOW)))
    assert "start  foreach  → work  (foreach items)" in text
    assert "Fan out over the items." in text and "join   join     → end" in text
    mermaid = ok(run_script(FLOW, "show", "--format", "mermaid"))
    assert mermaid.startswith("flowchart TD") and "step_start -->|foreach items| step_work" in mermaid
    dot = ok(run_cli("show", "InspectFlow", "latest", "--graph", "--format", "dot"))
    assert dot.startswith("digraph InspectFlow {") and '"join" -> "end";' in dot


def test_show_a_run(store: Path, runs: tuple[Path, str, str]) -> None:
    _, ok_id, bad_id = runs
    failed = ok(run_cli("show", str(FLOW), bad_id))
    assert f"Run InspectFlow/{bad_id}  failed" in failed and "error: " in failed
    work = next(ln for ln in failed.splitlines() if ln.startswith("work "))
    assert "ValueError: bad item 1" in work  # the cause, before siblings stopped because of it
    assert "not run" in failed and f"Artifacts of InspectFlow/{bad_id}/start/1" in failed
    assert "big       4.0 KB" in failed
    done = ok(run_cli("show", "InspectFlow", ok_id))
    assert f"Artifacts of InspectFlow/{ok_id}/end/" in done and "squares" in done
    assert "params fail=False, width=3" in done


def test_logs(store: Path, runs: tuple[Path, str, str]) -> None:
    _, ok_id, bad_id = runs
    step = ok(run_cli("logs", str(FLOW), f"{ok_id}/work"))
    assert step.splitlines() == [f"[{ok_id}/work/{t}] work {t - 2}" for t in (2, 3, 4)]
    assert ok(run_cli("logs", str(FLOW), f"{ok_id}/work/3", "--stderr")) == "warn 1\n"
    assert ok(run_cli("logs", f"InspectFlow/{ok_id}/work/3", "--both")) == "work 1\nwarn 1\n"
    assert ok(run_script(FLOW, "logs", "latest/start")) == "starting\n"
    assert ok(run_script(FLOW, "logs", f"{ok_id}/end")) == "total 5\n"
    failure = ok(run_cli("logs", "InspectFlow", f"{bad_id}/work/3", "--stderr", "--attempt", "0"))
    assert "ValueError: bad item 1" in failure
    quiet = run_cli("logs", "InspectFlow", f"{ok_id}/join")
    assert quiet.returncode == 0 and quiet.stdout == "" and "nothing saved on stdout" in quiet.stderr


def test_user_errors_are_one_line(store: Path, runs: tuple[Path, str, str], tmp_path: Path) -> None:
    ok_id = runs[1]
    user_error(run_cli("show", str(FLOW), "123"), "no run InspectFlow/123 in")
    user_error(run_cli("logs", str(FLOW), f"{ok_id}/nope"), "has no step 'nope' (its steps: start")
    user_error(run_cli("logs", str(FLOW), f"{ok_id}/work/9"), "has no task '9' (its tasks: 2, 3, 4)")
    user_error(run_cli("logs", str(FLOW), f"{ok_id}/work/3", "--attempt", "2"), "no attempt 2")
    user_error(run_cli("list", "runs", "--flow", "Nope"), "no runs of Nope in")
    user_error(run_cli("logs", str(FLOW), ok_id), "expected RUN_ID/STEP")
    empty = str(tmp_path / "empty")
    user_error(run_cli("list", "runs", "--datastore-root", empty), "is empty: run a flow first")
    user_error(run_cli("show", "InspectFlow", "latest", "--datastore-root", empty), "is empty")


def test_logs_follow_a_live_run(store_root: Path, tmp_path: Path) -> None:
    slow = FLOWS / "inspect_slow.py"
    id_file = tmp_path / "run_id"
    running = subprocess.Popen(
        [sys.executable, "-m", "aflow", "run", str(slow), "-q", "--run-id-file", str(id_file)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 120  # generous: a loaded machine starts slowly
        while not id_file.exists() and time.monotonic() < deadline:
            time.sleep(0.05)
        run_id = id_file.read_text()
        followed = run_cli("logs", str(slow), f"{run_id}/nap", "--follow")
        assert running.wait(120) == 0
    finally:
        running.kill()
    assert followed.returncode == 0, followed.stderr
    lines = followed.stdout.splitlines()
    assert [ln.split("] ")[1] for ln in lines] == ["napped 0.5", "napped 2.0"]  # as each task ended
