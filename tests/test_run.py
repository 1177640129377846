"""Flows run end to end on the local backend: through the CLI, `python flow.py run` and run_flow()."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import anyio
import msgpack
import pytest
from conftest import EXAMPLES, FLOWS, run_cli, run_script

import aflow
from aflow.engine import events as ev


def records(root: Path, flow: str) -> dict[str, dict]:
    """Every run record of a flow, by run id."""
    out = {}
    for run_dir in (root / flow).iterdir():
        if run_dir.name != "data":
            out[run_dir.name] = msgpack.unpackb((run_dir / "run.mpk").read_bytes())
    return out


# -- the examples, through the command line ----------------------------------------------------


def test_linear_example_prints_with_prefix(store_root: Path) -> None:
    result = run_cli("run", str(EXAMPLES / "linear.py"), "--greeting", "hi")
    assert result.returncode == 0, result.stderr
    (run_id,) = records(store_root, "LinearFlow")
    assert f"[{run_id}/end/4] hi from aflow" in result.stdout
    assert "Done!" in result.stdout


def test_branch_example(store_root: Path) -> None:
    result = run_cli("run", str(EXAMPLES / "branch.py"), "-q")
    assert result.returncode == 0, result.stderr
    assert "results={'double': 20, 'square': 100}" in result.stdout


def test_foreach_example_via_python_flow_py_run(store_root: Path) -> None:
    result = run_script(EXAMPLES / "foreach.py", "run", "--width", "20", "--max-workers", "4")
    assert result.returncode == 0, result.stderr
    assert "sum of squares of 0..19 = 2470" in result.stdout


def test_numpy_example_and_client_readback(store_root: Path) -> None:
    result = run_cli("run", str(EXAMPLES / "numpy_transfer.py"))
    assert result.returncode == 0, result.stderr
    assert "sum = 499999500000" in result.stdout
    (run_id,) = records(store_root, "NumpyTransferFlow")
    run = aflow.Run(f"NumpyTransferFlow/{run_id}")
    assert run.successful and run.data.sum == 499999500000
    assert run["start"].task.data.array.shape == (1_000_000,)


def test_spawn_fallback_runs_the_same(store_root: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AFLOW_LOCAL_SPAWN", "1")
    result = run_cli("run", str(EXAMPLES / "foreach.py"), "--width", "3", "-q")
    assert result.returncode == 0, result.stderr
    assert "sum of squares of 0..2 = 5" in result.stdout


# -- the unseen-flow shape: nested foreach, branch in foreach, merge_artifacts, params, numpy --


def test_nested_flow_cli_and_python_flow_py(store_root: Path) -> None:
    result = run_cli("run", str(FLOWS / "nested.py"), "--label", "cli", "--verbose")
    assert result.returncode == 0, result.stderr
    assert "cli:a1,a2,b1,b2,c1,c2" in result.stdout
    result = run_script(FLOWS / "nested.py", "run", "--scale", "5", "--no-verbose", "-q")
    assert result.returncode == 0, result.stderr
    assert "Done!" in result.stdout and "a1,a2" not in result.stdout
    run_ids = sorted(records(store_root, "NestedFlow"))
    assert len(run_ids) == 2
    assert aflow.Run(f"NestedFlow/{run_ids[-1]}").data.total_weight == 5 * 1000 * 3


def test_nested_flow_run_flow_artifacts(store_root: Path) -> None:
    from nested import NestedFlow

    run = anyio.run(lambda: aflow.run_flow(NestedFlow, params={"scale": 3, "label": "api"}))
    assert run.successful
    assert run.data.summary == "api:a1,a2,b1,b2,c1,c2"
    assert run.data.total_weight == 3 * 1000 * 3  # weights merged through both joins
    assert run.data.scale == 3 and run.data.label == "api"
    assert run.data.where == f"NestedFlow/{run.id}/end/{run.end_task.id}"
    stacks = sorted(t.data.stack for t in run["per_number"])
    assert stacks == [[(i, 3), (j, 2)] for i in range(3) for j in range(2)]
    sides = {t.data.sides for t in run["rejoin"]}
    assert sides == {"LR"}


def test_run_flow_does_not_block_the_event_loop(store_root: Path) -> None:
    from behaviours import ConcurrencyFlow

    ticks: list[float] = []

    async def main() -> aflow.Run:
        async with anyio.create_task_group() as tg:

            async def ticker() -> None:
                while True:
                    await anyio.sleep(0.01)
                    ticks.append(time.time())

            tg.start_soon(ticker)
            run = await aflow.run_flow(ConcurrencyFlow, params={"width": 4, "nap": 2.0})
            tg.cancel_scope.cancel()
        return run

    run = anyio.run(main)
    assert run.successful
    # The loop kept turning while every task ran: a scheduler that waited for a task on the loop
    # would leave a 2 s task with no tick inside it. (Counting ticks against the wall clock
    # instead failed on a loaded machine, where every sleep overshoots.)
    for began, ended in run["join"].task.data.spans:
        assert any(began < t < ended for t in ticks), (began, ended)


def test_max_workers_bounds_running_tasks(store_root: Path) -> None:
    from behaviours import ConcurrencyFlow

    run = anyio.run(lambda: aflow.run_flow(ConcurrencyFlow, params={"width": 6}, max_workers=2))
    spans = run["join"].task.data.spans
    most = max(sum(1 for b, e in spans if b <= t < e) for t, _ in spans)
    assert most <= 2
    assert len(run["join"].task.data.pids) == 6  # one process per task
    assert run["join"].task.data.indexes == list(range(6))


def test_async_step_is_awaited(store_root: Path) -> None:
    from behaviours import AsyncStepFlow

    run = anyio.run(lambda: aflow.run_flow(AsyncStepFlow))
    assert run.successful and run.data.seen is True


def test_events_stream(store_root: Path) -> None:
    from behaviours import ChattyFlow

    async def main() -> list[ev.Event]:
        seen = []
        async with aflow.start_flow(ChattyFlow) as running:
            async for event in running.events():
                seen.append(event)
        return seen

    seen = anyio.run(main)
    assert isinstance(seen[0], ev.RunStarted) and isinstance(seen[-1], ev.RunFinished)
    assert seen[-1].status == "done"
    lines = [(e.stream, e.line) for e in seen if isinstance(e, ev.OutputLine)]
    assert lines == [
        ("stdout", "line 0"),
        ("stdout", "line 1"),
        ("stdout", "line 2"),
        ("stderr", "to stderr"),
        ("stdout", "no newline at the end"),
    ] or sorted(lines) == sorted(
        [
            ("stdout", "line 0"),
            ("stdout", "line 1"),
            ("stdout", "line 2"),
            ("stderr", "to stderr"),
            ("stdout", "no newline at the end"),
        ]
    )
    assert sum(isinstance(e, ev.TaskFinished) for e in seen) == 2


def test_logs_are_saved_beside_the_task_record(store_root: Path) -> None:
    from behaviours import ChattyFlow

    run = anyio.run(lambda: aflow.run_flow(ChattyFlow))
    task_dir = store_root / "ChattyFlow" / run.id / "start" / "1"
    assert sorted(os.listdir(task_dir)) == ["0.log", "0.mpk", "0.start"]
    saved = (task_dir / "0.log").read_text().splitlines()
    assert saved[0].endswith(" stdout line 0")
    assert any(line.endswith(" stderr to stderr") for line in saved)
    assert not (store_root / "ChattyFlow" / run.id / "end" / "2" / "0.log").exists()


# -- parameters -----------------------------------------------------------------------------


def test_parameters_required_typed_and_defaults(store_root: Path) -> None:
    from behaviours import RequiredParamFlow

    run = anyio.run(lambda: aflow.run_flow(RequiredParamFlow, params={"alpha": "1.5"}))
    assert run.data.doubled == 3.0 and run.data.tags == ["x"]
    assert run.data.ctx == ("RequiredParamFlow", "end", 0)
    with pytest.raises(aflow.exception.ParameterError, match="required"):
        anyio.run(lambda: aflow.run_flow(RequiredParamFlow))
    with pytest.raises(aflow.exception.ParameterError, match="cannot read 'abc' as float"):
        anyio.run(lambda: aflow.run_flow(RequiredParamFlow, params={"alpha": "abc"}))
    with pytest.raises(aflow.exception.ParameterError, match="no parameter 'beta'"):
        anyio.run(lambda: aflow.run_flow(RequiredParamFlow, params={"alpha": 1, "beta": 2}))


def test_parameter_errors_on_the_command_line(store_root: Path) -> None:
    path = str(FLOWS / "nested.py")
    result = run_cli("run", path, "--sclae", "3")
    assert result.returncode == 1
    assert "has no parameter --sclae" in result.stderr and "--scale" in result.stderr
    result = run_cli("run", path, "--scale", "three")
    assert result.returncode == 1 and "cannot read 'three' as int" in result.stderr
    assert "Traceback" not in result.stderr
    assert not store_root.exists()


def test_parameters_are_read_only(store_root: Path) -> None:
    from behaviours import ReassignParamFlow

    run = anyio.run(lambda: aflow.run_flow(ReassignParamFlow))
    assert not run.successful
    assert "parameter 'alpha' is read-only" in run.error


# -- failures -------------------------------------------------------------------------------


def test_failing_step_fails_the_run_and_stops_the_others(store_root: Path) -> None:
    started = time.monotonic()
    result = run_cli("run", str(FLOWS / "failing.py"))
    assert time.monotonic() - started < 20  # the sleeping siblings were stopped
    assert result.returncode == 1
    ((run_id, record),) = records(store_root, "FailingFlow").items()
    assert record["status"] == "failed"
    assert "ValueError: item 3 is bad" in record["error"]["message"]
    assert f"FailingFlow/{run_id}/work/" in record["error"]["task"]
    assert 'failing.py", line 17, in work' in result.stderr
    assert "raise ValueError" in result.stderr
    assert "aflow/engine" not in result.stderr  # the user's frames only
    assert "Task failed: ValueError: item 3 is bad" in result.stdout


def test_siblings_stopped_by_a_failure_count_as_stopped_everywhere(store_root: Path) -> None:
    result = run_cli("run", str(FLOWS / "failing.py"))
    assert result.returncode == 1
    # start done; one work task failed; its five siblings, sleeping, were stopped by the engine.
    assert "failed (1 task done, 1 failed, 5 stopped)" in result.stdout
    assert result.stdout.count("Task stopped.") == 5
    assert result.stdout.count("Task failed") == 1
    ((run_id, record),) = records(store_root, "FailingFlow").items()
    assert (record["tasks_done"], record["tasks_failed"], record["tasks_stopped"]) == (1, 1, 5)
    listed = run_cli("list", "runs", str(FLOWS / "failing.py")).stdout
    assert " 1/1/5 " in listed
    shown = run_cli("show", str(FLOWS / "failing.py"), run_id).stdout
    work = next(line.split() for line in shown.splitlines() if line.startswith("work "))
    assert work[1:5] == ["6", "0", "1", "5"]  # tasks, done, failed, stopped


def test_merge_conflict_names_the_artifacts(store_root: Path) -> None:
    from behaviours import ConflictFlow

    run = anyio.run(lambda: aflow.run_flow(ConflictFlow))
    assert not run.successful
    assert "inputs disagree on x" in run.error
    assert "same" not in run.error


def test_foreach_over_non_iterable_names_step_and_line(store_root: Path) -> None:
    from behaviours import NotIterableFlow

    run = anyio.run(lambda: aflow.run_flow(NotIterableFlow))
    assert not run.successful
    line = next(
        i
        for i, text in enumerate((FLOWS / "behaviours.py").read_text().splitlines(), 1)
        if 'foreach="items"' in text and i > 100
    )
    assert "'items', which is not iterable (it is int 5)" in run.error
    assert f"behaviours.py:{line}" in run.error


# -- cancellation and crashes --------------------------------------------------------------


def _descendants(pid: int) -> set[int]:
    out = subprocess.run(["ps", "-eo", "pid,ppid"], capture_output=True, text=True)
    children: dict[int, list[int]] = {}
    for line in out.stdout.splitlines()[1:]:
        child, parent = map(int, line.split())
        children.setdefault(parent, []).append(child)
    found, todo = set(), [pid]
    while todo:
        for child in children.get(todo.pop(), []):
            found.add(child)
            todo.append(child)
    return found


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().split()[2] != "Z"
    except OSError:
        return False


def test_cancelling_run_flow_stops_every_task(store_root: Path) -> None:
    from behaviours import SleepyFlow

    pids: list[int] = []

    async def main() -> None:
        async with aflow.start_flow(SleepyFlow) as running:
            with anyio.move_on_after(30) as scope:
                async for event in running.events():
                    if isinstance(event, ev.OutputLine) and event.line.startswith("napping"):
                        pids.append(int(event.line.split()[1]))
                        if len(pids) == 4:
                            scope.cancel()
                            raise RuntimeError("cancel the run")

    started = time.monotonic()
    with pytest.raises(RuntimeError, match="cancel the run"):
        anyio.run(main)
    assert time.monotonic() - started < 20
    assert len(pids) == 4
    for pid in pids:
        with pytest.raises(ProcessLookupError):
            os.kill(pid, 0)
    (record,) = records(store_root, "SleepyFlow").values()
    assert record["status"] == "cancelled"


def test_sigint_cancels_cli_run(store_root: Path, tmp_path: Path) -> None:
    run_id_file = tmp_path / "run_id"
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "aflow",
            "run",
            str(FLOWS / "behaviours_sleepy.py"),
            "--run-id-file",
            str(run_id_file),
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    deadline = time.monotonic() + 30
    seen = ""
    while seen.count("napping") < 4 and time.monotonic() < deadline:
        seen += proc.stdout.readline()  # type: ignore[union-attr]
    proc.send_signal(signal.SIGINT)
    try:
        proc.wait(timeout=15)
    finally:
        proc.kill()
    assert proc.returncode != 0
    (record,) = records(store_root, "SleepyFlow").values()
    assert record["status"] == "cancelled"
    nappers = [int(line.split()[-1]) for line in seen.splitlines() if "napping" in line]
    for pid in nappers:
        with pytest.raises(ProcessLookupError):
            os.kill(pid, 0)


def test_killed_scheduler_leaves_only_whole_records(store_root: Path) -> None:
    proc = subprocess.Popen(
        [sys.executable, "-m", "aflow", "run", str(EXAMPLES / "foreach.py"), "--width", "400", "-q"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    deadline = time.monotonic() + 20
    while not list(store_root.glob("ForeachFlow/*/work/*/0.mpk")) and time.monotonic() < deadline:
        time.sleep(0.05)
    below = _descendants(proc.pid)
    assert below, "the run had started its warm parent and tasks"
    proc.kill()
    proc.wait()
    deadline = time.monotonic() + 10  # the warm parent notices and stops its children
    while any(_alive(p) for p in below) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not any(_alive(p) for p in below)
    count = 0
    for dirpath, _dirs, files in os.walk(store_root):
        for name in files:
            # A task killed mid-write may leave its temporary file; never a partial record.
            if name.endswith(".mpk"):
                record = msgpack.unpackb((Path(dirpath) / name).read_bytes())
                assert record["status"] in ("running", "done", "failed", "stopped")
                count += 1
    assert count > 0


# -- the store footprint --------------------------------------------------------------------


def test_foreach_leaves_few_files_per_task(store_root: Path) -> None:
    result = run_cli("run", str(EXAMPLES / "foreach.py"), "--width", "200", "-q")
    assert result.returncode == 0, result.stderr
    files = [f for _, _, fs in os.walk(store_root) for f in fs]
    tasks = 200 + 3
    assert len(files) / tasks <= 3


# -- scripts that call run_flow() themselves ------------------------------------------------

SCRIPT = """
import anyio
from dataclasses import dataclass

import aflow
from aflow import FlowSpec, step


@dataclass
class Point:
    x: int


class ScriptFlow(FlowSpec):
    @step
    def start(self):
        self.point = Point(3)
        self.next(self.end)

    @step
    def end(self):
        self.doubled = Point(self.point.x * 2)


async def main():
    run = await aflow.run_flow(ScriptFlow)
    print("RESULT", run.successful, run.data.doubled)

{guard}
    anyio.run(main)
"""


def test_script_running_its_own_flow(store_root: Path, tmp_path: Path) -> None:
    script = tmp_path / "script.py"
    script.write_text(SCRIPT.format(guard='if __name__ == "__main__":'))
    result = run_script(script)
    assert result.returncode == 0, result.stderr
    assert "RESULT True Point(x=6)" in result.stdout  # classes from the script round-trip


def test_unguarded_script_fails_cleanly_instead_of_recursing(store_root: Path, tmp_path: Path) -> None:
    script = tmp_path / "script.py"
    script.write_text(SCRIPT.format(guard="if True:"))
    result = run_script(script, timeout=300)
    assert result.returncode != 0
    assert 'put the call under `if __name__ == "__main__":`' in result.stderr


def test_run_help_lists_the_flow_parameters(store_root: Path) -> None:
    result = run_cli("run", str(FLOWS / "nested.py"), "--help")
    assert result.returncode == 0, result.stderr
    assert "Parameters of NestedFlow:" in result.stdout
    assert "--scale INT" in result.stdout and "multiplier" in result.stdout
    assert "--verbose/--no-verbose" in result.stdout
    assert not store_root.exists()  # nothing ran
    result = run_script(FLOWS / "nested.py", "run", "--help")
    assert "--label STR" in result.stdout


def test_artifacts_changed_in_place_are_saved_and_untouched_ones_kept(store_root: Path) -> None:
    from behaviours import InPlaceFlow

    run = anyio.run(lambda: aflow.run_flow(InPlaceFlow))
    assert run.successful
    assert run.data.total_after == 3.0

    def key(step: str) -> str:
        (task,) = list(run[step])
        return _record(store_root, run.id, step, task.id)["artifacts"]["big"]["k"]

    assert key("reader") == key("start")  # read, left alone: the same blob
    assert key("writer") != key("start")  # changed in place: a new blob
    assert run["start"].task.data.big.sum() == 0.0


def _record(root: Path, run_id: str, step: str, task_id: str) -> dict:
    return msgpack.unpackb((root / "InPlaceFlow" / run_id / step / task_id / "0.mpk").read_bytes())
