"""Retry, catch, timeout, environment, --with, --tag, and resume, through run_flow and the CLI."""

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
from conftest import run_cli

import aflow
from aflow.engine.events import TaskFailed
from aflow.exception import CaughtException


def run(flow: type, **options: object) -> aflow.Run:
    return anyio.run(lambda: aflow.run_flow(flow, **options))


def test_retry_passes_a_flaky_step(store_root: Path) -> None:
    from recovery import FlakyFlow

    result = run(FlakyFlow)
    assert result.successful, result.error
    assert result["join"].task.data.values == [(0, 0), (1, 2), (2, 0)]
    flaky = next(t for t in result["work"] if t.data.value[0] == 1)
    attempts = sorted(
        p.name for p in (store_root / "FlakyFlow" / result.id / "work" / flaky.id).iterdir()
    )
    assert attempts == ["0.log", "0.mpk", "0.start", "1.log", "1.mpk", "1.start", "2.mpk", "2.start"]


def test_retry_only_platform_errors(store_root: Path) -> None:
    from recovery import PlatformOnlyFlow

    own_bug = run(PlatformOnlyFlow, params={"mode": "user"})
    assert not own_bug.successful and "my own bug" in own_bug.error
    killed = run(PlatformOnlyFlow, params={"mode": "kill"})
    assert killed.successful, killed.error
    assert killed["start"].task.data.attempts == 2


def test_catch_lets_a_failing_foreach_branch_through(store_root: Path) -> None:
    from recovery import CatchFlow

    result = run(CatchFlow)
    assert result.successful, result.error
    join = result["join"].task.data
    assert join.results == [12, None, 3]
    assert "ZeroDivisionError: integer division or modulo by zero" in join.problems[1]
    caught = next(t for t in result["divide"] if t.data.problem is not None)
    problem = caught.data.problem
    assert isinstance(problem, CaughtException)
    assert problem.type == "builtins.ZeroDivisionError" and "12 // self.input" in problem.traceback


def test_timeout_stops_the_task_and_retry_runs_it_again(store_root: Path) -> None:
    from recovery import TimeoutFlow

    started = time.monotonic()
    result = run(TimeoutFlow)
    assert result.successful, result.error
    assert time.monotonic() - started < 20
    assert result["start"].task.data.finished_on == 1
    assert result.data.greeting == "hello"  # @environment


def test_with_decorators_and_tags_from_the_command_line(store_root: Path, tmp_path: Path) -> None:
    flow = tmp_path / "plain.py"
    flow.write_text("from recovery import PlainFlow  # noqa: F401\n")
    env_path = str(Path(__file__).parent / "flows")
    os.environ["PYTHONPATH"] = env_path
    try:
        failing = run_cli("run", str(flow), "-q")
        assert failing.returncode == 1
        result = run_cli(
            "run",
            str(flow),
            "--with",
            "retry:times=1,minutes_between_retries=0",
            "--tag",
            "nightly",
            "--tag",
            "v2",
        )
    finally:
        del os.environ["PYTHONPATH"]
    assert result.returncode == 0, result.stderr
    assert "Task failed: RuntimeError: first try fails; retrying" in result.stdout
    latest = max((store_root / "PlainFlow").iterdir(), key=lambda p: p.name if p.name.isdigit() else "")
    record = msgpack.unpackb((latest / "run.mpk").read_bytes())
    assert record["tags"] == ["nightly", "v2"]
    assert aflow.Run(f"PlainFlow/{latest.name}")["start"].task.data.tags == ["nightly", "v2"]


def test_bad_with_spec_is_refused_before_running(store_root: Path) -> None:
    from recovery import PlainFlow

    with pytest.raises(aflow.exception.AflowException, match="no decorator named 'retri'"):
        run(PlainFlow, with_decorators=["retri"])
    with pytest.raises(aflow.exception.AflowException, match="@timeout has no option"):
        run(PlainFlow, with_decorators=["timeout:secs=3"])


def test_max_num_splits(store_root: Path) -> None:
    from recovery import CatchFlow

    result = run(CatchFlow, max_num_splits=2)
    assert not result.successful and "more than --max-num-splits 2" in result.error


# -- resume ---------------------------------------------------------------------------------

RESUMABLE = """
import os
from aflow import FlowSpec, Parameter, current, step


class ResumableFlow(FlowSpec):
    n = Parameter("n", default=5)

    @step
    def start(self):
        self.items = list(range(self.n))
        self.next(self.work, foreach="items")

    @step
    def work(self):
        if self.input == 3 and os.environ.get("BREAK") == "1":
            raise RuntimeError("item 3 broke")
        self.sq = self.input ** 2 {extra}
        print("working on", self.input)
        self.next(self.join)

    @step
    def join(self, inputs):
        self.total = sum(i.sq for i in inputs)
        self.origin = current.origin_run_id
        self.next(self.end)

    @step
    def end(self):
        print("total", self.total)


if __name__ == "__main__":
    ResumableFlow()
"""


def _write(path: Path, extra: str = "") -> Path:
    path.write_text(RESUMABLE.replace("{extra}", extra))
    return path


def _records(root: Path, run_id: str, step: str) -> list[dict]:
    base = root / "ResumableFlow" / run_id / step
    return [msgpack.unpackb((d / "0.mpk").read_bytes()) for d in base.iterdir()]


def _run_ids(root: Path) -> list[str]:
    return sorted(p.name for p in (root / "ResumableFlow").iterdir() if p.name.isdigit())


def test_resume_reuses_what_finished(store_root: Path, tmp_path: Path) -> None:
    flow = _write(tmp_path / "resumable.py")
    os.environ["BREAK"] = "1"
    try:
        failed = run_cli("run", str(flow), "--n", "6", "--max-workers", "1")
    finally:
        del os.environ["BREAK"]
    assert failed.returncode == 1
    (origin,) = _run_ids(store_root)
    blobs_before = sorted((store_root / "ResumableFlow" / "data").rglob("*"))
    resumed = run_cli("resume", str(flow))
    assert resumed.returncode == 0, resumed.stderr
    assert "total 55" in resumed.stdout and f"resuming {origin}" in resumed.stdout
    new = _run_ids(store_root)[-1]
    works = _records(store_root, new, "work")
    cloned = [r for r in works if r["cloned_from"]]
    assert len(cloned) == 3 and all(
        r["cloned_from"].startswith(f"ResumableFlow/{origin}/work/") for r in cloned
    )
    assert {r["foreach_stack"][0][1] for r in works if not r["cloned_from"]} == {3, 4, 5}
    assert _records(store_root, new, "start")[0]["cloned_from"]
    run_record = msgpack.unpackb((store_root / "ResumableFlow" / new / "run.mpk").read_bytes())
    assert run_record["origin_run_id"] == origin and run_record["params"]["n"] == "6"
    assert aflow.Run(f"ResumableFlow/{new}")["join"].task.data.origin == origin
    # Reused tasks point at the same blobs: nothing was copied.
    new_blobs = set((store_root / "ResumableFlow" / "data").rglob("*")) - set(blobs_before)
    assert all(p.is_dir() or p.stat().st_size < 1000 for p in new_blobs)


def test_resume_from_a_step_and_after_a_code_change(store_root: Path, tmp_path: Path) -> None:
    flow = _write(tmp_path / "resumable.py")
    assert run_cli("run", str(flow), "-q").returncode == 0
    first = _run_ids(store_root)[-1]
    again = run_cli("resume", str(flow), "join", "--origin-run-id", first, "-q")
    assert again.returncode == 0, again.stderr
    second = _run_ids(store_root)[-1]
    assert all(r["cloned_from"] for r in _records(store_root, second, "work"))
    assert not _records(store_root, second, "join")[0]["cloned_from"]
    _write(flow, extra="+ 1")  # the work step's code changes
    changed = run_cli("resume", str(flow), "--origin-run-id", first, "-q")
    assert changed.returncode == 0, changed.stderr
    third = _run_ids(store_root)[-1]
    assert not any(r["cloned_from"] for r in _records(store_root, third, "work"))
    assert _records(store_root, third, "start")[0]["cloned_from"]
    assert "total 35" in changed.stdout  # 0+1+4+9+16 plus five ones


def test_resume_errors_are_clear(store_root: Path, tmp_path: Path) -> None:
    flow = _write(tmp_path / "resumable.py")
    nothing = run_cli("resume", str(flow))
    assert nothing.returncode == 1 and "no run of ResumableFlow" in nothing.stderr
    assert run_cli("run", str(flow), "-q").returncode == 0
    bad = run_cli("resume", str(flow), "nosuchstep")
    assert bad.returncode == 1 and "no such step" in bad.stderr
    assert "Traceback" not in bad.stderr


def test_interrupted_run_resumes_to_the_same_result(store_root: Path, tmp_path: Path) -> None:
    flow = tmp_path / "slowish.py"
    flow.write_text(RESUMABLE.replace("{extra}", "\n        import time; time.sleep(0.4)"))
    clean = run_cli("run", str(flow), "--n", "12", "-q")
    assert "total 506" in clean.stdout
    proc = subprocess.Popen(
        [sys.executable, "-m", "aflow", "run", str(flow), "--n", "12", "--max-workers", "2"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    seen = ""
    while seen.count("Task finished") < 4:
        seen += proc.stdout.readline()  # type: ignore[union-attr]
    proc.send_signal(signal.SIGINT)
    proc.wait(timeout=20)
    assert proc.returncode != 0
    interrupted = _run_ids(store_root)[-1]
    record = msgpack.unpackb((store_root / "ResumableFlow" / interrupted / "run.mpk").read_bytes())
    assert record["status"] == "cancelled"
    resumed = run_cli("resume", str(flow), "--origin-run-id", interrupted, "-q")
    assert resumed.returncode == 0, resumed.stderr
    assert "total 506" in resumed.stdout


def test_include_file(store_root: Path, tmp_path: Path) -> None:
    from recovery import IncludeFlow

    table = tmp_path / "t.csv"
    table.write_text("a,b\n1,2\n")
    binary = tmp_path / "blob.bin"
    binary.write_bytes(bytes(range(256)) * 4)
    result = run(IncludeFlow, params={"table": str(table), "raw": str(binary)})
    assert result.successful, result.error
    assert result["start"].task.data.rows == [["a", "b"], ["1", "2"]]
    assert result["start"].task.data.raw_size == 1024
    with pytest.raises(aflow.exception.ParameterError, match=r"'table': cannot read missing\.csv"):
        run(IncludeFlow)
    with pytest.raises(aflow.exception.ParameterError, match="is not utf-8 text"):
        run(IncludeFlow, params={"table": str(binary)})


def test_reused_tasks_keep_their_output(store_root: Path, tmp_path: Path) -> None:
    flow = _write(tmp_path / "resumable.py")
    assert run_cli("run", str(flow), "-q").returncode == 0
    first = _run_ids(store_root)[-1]
    assert run_cli("resume", str(flow), "end", "--origin-run-id", first, "-q").returncode == 0
    second = _run_ids(store_root)[-1]
    resumed = aflow.Run(f"ResumableFlow/{second}")
    aflow.namespace(None)
    outputs = sorted(t.stdout for t in resumed["work"])
    assert outputs == sorted(t.stdout for t in aflow.Run(f"ResumableFlow/{first}")["work"])
    assert outputs[0].startswith("working on ")


def test_a_task_being_retried_is_not_finished(
    store_root: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from recovery import SlowRetryFlow

    gate = tmp_path / "gate"
    monkeypatch.setenv("AFLOW_TEST_GATE", str(gate))
    seen: dict[str, object] = {}

    async def main() -> None:
        async with aflow.start_flow(SlowRetryFlow) as running:
            events = running.events()
            async for event in events:  # a local step retries at once: the failure says "now"
                if isinstance(event, TaskFailed):
                    seen["retry_in"] = (event.retrying, event.retry_in)
                    break
            first = store_root / "SlowRetryFlow" / running.run_id / "start" / "1" / "0.mpk"
            assert first.exists()
            task = await anyio.to_thread.run_sync(aflow.Task, f"SlowRetryFlow/{running.run_id}/start/1")
            seen["during"] = await anyio.to_thread.run_sync(lambda: (task.finished, task.successful))
            seen["task"] = task
            gate.touch()
            async for _ in events:
                pass
        seen["after"] = await anyio.to_thread.run_sync(lambda: (task.finished, task.successful))

    aflow.namespace(None)
    anyio.run(main)
    assert seen["retry_in"] == (True, 0.0)
    assert seen["during"] == (False, False)
    assert seen["after"] == (True, True)
