"""Acceptance tests: new Metaflow-tutorial-style flows run end to end through the CLI and run_flow.

Every test runs real flows (subprocess `aflow run` / `python flow.py run` / `aflow check`, or
`run_flow` from an asyncio program) against a datastore under tmp_path. The flows live in
tests/acceptance_flows/.
"""

from __future__ import annotations

import asyncio
import glob
import os
import re
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import msgpack
import pytest

FLOWS = Path(__file__).parent / "acceptance_flows"
INVALID = FLOWS / "invalid"

if str(FLOWS) not in sys.path:
    sys.path.insert(0, str(FLOWS))


# --------------------------------------------------------------------------------------------
# helpers


def aflow(*args: str, root: Path, timeout: float = 300, cwd: Path | None = None):
    env = dict(os.environ, AFLOW_DATASTORE_ROOT=str(root))
    return subprocess.run(
        ["aflow", *args],
        capture_output=True,
        text=True,
        env=env,
        timeout=timeout,
        cwd=cwd,
    )


def flow_path(name: str) -> str:
    return str(FLOWS / name)


def unpack(path: str | Path) -> dict:
    with open(path, "rb") as f:
        return msgpack.unpackb(f.read(), raw=False, strict_map_key=False)


def run_records(root: Path, flow: str) -> list[dict]:
    return [unpack(f) for f in glob.glob(str(root / flow / "*" / "run.mpk"))]


def all_mpk_parse(root: Path) -> tuple[int, list[str]]:
    files = glob.glob(str(root / "**" / "*.mpk"), recursive=True)
    bad = []
    for f in files:
        try:
            unpack(f)
        except Exception as e:  # pragma: no cover - reported in the assertion
            bad.append(f"{f}: {e!r}")
    return len(files), bad


def tmp_files(root: Path) -> list[str]:
    return [
        f
        for f in glob.glob(str(root / "**" / "*"), recursive=True)
        if "tmp" in os.path.basename(f).lower()
    ]


def descendants(pid: int) -> list[int]:
    out = subprocess.run(["ps", "-eo", "pid=,ppid="], capture_output=True, text=True).stdout
    kids: dict[int, list[int]] = {}
    for line in out.splitlines():
        p, pp = map(int, line.split())
        kids.setdefault(pp, []).append(p)
    res, stack = [], [pid]
    while stack:
        x = stack.pop()
        for c in kids.get(x, []):
            res.append(c)
            stack.append(c)
    return res


def living(pids: list[int]) -> list[int]:
    """Processes that still run (zombies left to a non-reaping PID 1 do not count)."""
    alive = []
    for p in pids:
        try:
            with open(f"/proc/{p}/stat") as f:
                state = f.read().rsplit(")", 1)[1].split()[0]
        except (FileNotFoundError, ProcessLookupError):
            continue
        if state not in ("Z", "X"):
            alive.append(p)
    return alive


def kill_all(pids: list[int]) -> None:
    for p in living(pids):
        try:
            os.kill(p, signal.SIGKILL)
        except ProcessLookupError:
            pass


# --------------------------------------------------------------------------------------------
# the ML-style flow: nested foreach, branch inside foreach, merge_artifacts, params, numpy, classes


def test_train_flow_cli_end_to_end(tmp_path):
    r = aflow(
        "run",
        flow_path("acc_train.py"),
        "--name",
        "exp1",
        "--seed",
        "7",
        "--alpha",
        "0.25",
        "--no-normalize",
        "--grid",
        '{"lr": [0.1, 0.01, 0.001], "depth": [1, 2]}',
        "-q",
        root=tmp_path,
    )
    assert r.returncode == 0, r.stderr
    assert "training exp1 alpha 0.25 float seed 7 int normalize False" in r.stdout
    # stderr of a task is shown on stderr, prefixed like stdout
    assert "this goes to stderr" in r.stderr
    assert "this goes to stderr" not in r.stdout
    # Logs look like [run_id/step/task_id] line
    (rec,) = run_records(tmp_path, "TrainFlow")
    assert rec["status"] == "done"
    assert f"[{rec['run_id']}/start/1] training exp1" in r.stdout
    assert "best ModelSpec(0.001, 1) n 6" in r.stdout


def test_train_flow_run_flow_data_and_nonblocking(tmp_path):
    from acc_train import ModelSpec, TrainFlow

    import aflow as af

    async def main():
        gaps: list[float] = []
        stop = False

        async def ticker():
            last = time.monotonic()
            while not stop:
                await asyncio.sleep(0.01)
                now = time.monotonic()
                gaps.append(now - last)
                last = now

        t = asyncio.create_task(ticker())
        run = await af.run_flow(
            TrainFlow,
            params={"name": "api", "grid": {"lr": [1, 2, 3], "depth": [5, 6]}},
            max_workers=4,
            datastore_root=str(tmp_path),
        )
        stop = True
        await t
        assert run.successful
        assert len(gaps) > 10 and max(gaps) < 0.5, (len(gaps), max(gaps))
        d = run.data
        assert d.n == 6
        assert d.lrs_seen == [1, 2, 3]
        assert d.name == "api"
        assert isinstance(d.best, ModelSpec)
        assert d.best == ModelSpec(1, 5)
        # foreach_stack in the inner foreach: (index, num_splits, value) per level
        stacks = sorted(r[2] for r in d.all_results)
        assert stacks[0] == [(0, 3, 1), (0, 2, 5)]
        assert stacks[-1] == [(2, 3, 3), (1, 2, 6)]
        # params are visible in every step, including end
        assert d.grid == {"lr": [1, 2, 3], "depth": [5, 6]}
        assert d.seed == 42 and d.normalize is True
        # a join that does not merge does not propagate artifacts (Metaflow semantics)
        assert not hasattr(d, "X")
        # current.* in start
        info = run["start"].task.data.info
        assert info["flow"] == "TrainFlow"
        assert info["run"] == run.id
        assert info["step"] == "start"
        assert info["pathspec"] == f"TrainFlow/{run.id}/start/{info['task']}"
        assert info["retry"] == 0
        assert d.end_info.startswith(f"TrainFlow/{run.id}/end/")

    asyncio.run(main())


def test_train_flow_python_file_entry_point(tmp_path):
    env = dict(os.environ, AFLOW_DATASTORE_ROOT=str(tmp_path))
    r = subprocess.run(
        [sys.executable, flow_path("acc_train.py"), "run", "--name", "pyentry", "-q"],
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
        cwd=tmp_path,
    )
    assert r.returncode == 0, r.stderr
    assert "training pyentry" in r.stdout
    (rec,) = run_records(tmp_path, "TrainFlow")
    assert rec["status"] == "done"


# --------------------------------------------------------------------------------------------
# merge_artifacts


@pytest.mark.parametrize(
    ("mode", "ok", "expect"),
    [
        ("ok", True, "x None same [1, 2] only_a A base base"),
        ("preset", True, "x mine same [1, 2] only_a A base base"),
        ("include", True, "x None same [1, 2] only_a A base None"),
        ("conflict", False, "UnhandledInMergeArtifactsException"),
        ("include_conflict", False, "UnhandledInMergeArtifactsException"),
        ("include_missing", False, "MissingInMergeArtifactsException"),
        ("both", False, "MergeArtifactsException"),
    ],
)
def test_merge_artifacts_modes(tmp_path, mode, ok, expect):
    r = aflow("run", flow_path("acc_merge.py"), "--mode", mode, "-q", root=tmp_path)
    out = r.stdout + r.stderr
    if ok:
        assert r.returncode == 0, out
        assert expect in out
        assert "[1, 2, 3] [1, 2, 3] 3" in out  # inputs iterable, indexable, inputs.<step>
    else:
        assert r.returncode == 1, out
        assert expect in out
        assert "acc_merge.py" in out  # the user's frame is in the traceback


# --------------------------------------------------------------------------------------------
# foreach over different kinds of values


@pytest.mark.parametrize(
    ("kind", "expect"),
    [
        ("tuple", "[(0, 'a'), (1, 'b'), (2, 'c')]"),
        ("dict", "[(0, 'a'), (1, 'b'), (2, 'c')]"),
        ("range", "[(0, 0), (1, 1), (2, 2)]"),
        ("str", "[(0, 'a'), (1, 'b'), (2, 'c')]"),
    ],
)
def test_foreach_value_kinds(tmp_path, kind, expect):
    r = aflow("run", flow_path("acc_foreach_kinds.py"), "--kind", kind, "-q", root=tmp_path)
    assert r.returncode == 0, r.stderr
    assert f"RESULT {kind} {expect}" in r.stdout


@pytest.mark.parametrize(
    ("kind", "expect"),
    [
        ("gen", "cannot be pickled"),
        ("empty", "empty"),
        ("int", "not iterable"),
        ("none", "not iterable"),
        ("missing", "no artifact has that name"),
    ],
)
def test_foreach_bad_values_fail_the_run(tmp_path, kind, expect):
    r = aflow("run", flow_path("acc_foreach_kinds.py"), "--kind", kind, "-q", root=tmp_path)
    assert r.returncode == 1
    assert expect in r.stdout + r.stderr
    (rec,) = run_records(tmp_path, "ForeachKinds")
    assert rec["status"] == "failed"


# --------------------------------------------------------------------------------------------
# runtime misuse of self.next and abnormal step endings


@pytest.mark.parametrize(
    ("mode", "expect"),
    [
        ("twice", "called self.next() twice"),
        ("none", "returned without calling self.next()"),
        ("wrong", "self.next(start)"),
        ("foreach_dyn", "foreach='items'"),
        ("sysexit0", "SystemExit"),
        ("osexit", "without committing"),
        ("raise_async", "RuntimeError: async boom"),
        ("bad_artifact", "cannot be pickled"),
    ],
)
def test_runtime_next_misuse_fails(tmp_path, mode, expect):
    r = aflow("run", flow_path("acc_runtime_next.py"), "--mode", mode, "-q", root=tmp_path)
    assert r.returncode == 1, r.stdout + r.stderr
    assert expect in r.stdout + r.stderr
    (rec,) = run_records(tmp_path, "RuntimeNext")
    assert rec["status"] == "failed"


def test_async_step_traceback_shows_only_user_frames(tmp_path):
    """A sync step's failure shows only the user's frames; an async step's should too."""
    r = aflow("run", flow_path("acc_runtime_next.py"), "--mode", "raise_async", root=tmp_path)
    assert r.returncode == 1
    out = r.stdout + r.stderr
    assert 'acc_runtime_next.py", line' in out
    assert "asyncio/runners.py" not in out
    assert "asyncio/base_events.py" not in out


# --------------------------------------------------------------------------------------------
# Metaflow semantics of input/index/foreach_stack across nested splits and joins


def test_foreach_semantics_through_nested_joins(tmp_path):
    from acc_semantics import Semantics

    import aflow as af

    async def main():
        run = await af.run_flow(Semantics, datastore_root=str(tmp_path))
        assert run.successful
        s = run["start"].task.data
        assert (s.start_input, s.start_index, s.start_stack) == (None, None, [])
        d = run.data
        # after the inner join we are back in the outer foreach
        assert d.all_after_inner == [("a", 0, [(0, 2, "a")]), ("b", 1, [(1, 2, "b")])]
        assert d.after_outer == (None, None, [])
        assert d.all_nums == [[10, 11, 12], [10, 11, 12]]
        # a static branch inside a foreach still sees the foreach's input/index
        assert d.seen_all[0][0] == ((10, 0, [(0, 2, "a"), (0, 3, 10)]), (10, 0))
        assert d.seen_all[1][2] == ((12, 2, [(1, 2, "b"), (2, 3, 12)]), (12, 2))
        # a join sees no artifacts before merge_artifacts
        assert d.sbm == "AttributeError"
        # class constants are readable, _private attributes are not artifacts
        assert d.const == 7
        assert d.has_private is False and d.has_private_in_input is False

    asyncio.run(main())


# --------------------------------------------------------------------------------------------
# parameters on the CLI


def test_params_types_and_forms(tmp_path):
    r = aflow(
        "run",
        flow_path("acc_params.py"),
        "--must=1",
        "--count",
        "7",
        "--ratio",
        "2",
        "--title",
        "x y",
        "--flag",
        "--config",
        '{"a": [9], "b": null}',
        "--learning_rate",
        "0.5",
        "-q",
        root=tmp_path,
    )
    assert r.returncode == 0, r.stderr
    assert (
        "SEEN {'count': (7, 'int'), 'ratio': (2.0, 'float'), 'title': ('x y', 'str'), "
        "'flag': (True, 'bool'), 'config': ({'a': [9], 'b': None}, 'dict'), 'must': (1, 'int'), "
        "'learning_rate': (0.5, 'float'), 'nodef': (None, 'NoneType')}"
    ) in r.stdout
    assert "END 7 [9]" in r.stdout


@pytest.mark.parametrize(
    ("args", "expect"),
    [
        ([], "parameter 'must' is required"),
        (["--must", "1", "--nope", "3"], "has no parameter --nope"),
        (["--must", "abc"], "cannot read 'abc' as int"),
        (["--must", "1", "--count", "3.5"], "cannot read '3.5' as int"),
        (["--must", "1", "--ratio", "x"], "cannot read 'x' as float"),
        (["--must", "1", "--config", "{bad"], "as JSON"),
        (["--must"], "--must needs a value"),
        (["--must", "1", "extra"], "unexpected argument 'extra'"),
    ],
)
def test_bad_params_fail_before_running(tmp_path, args, expect):
    r = aflow("run", flow_path("acc_params.py"), *args, "-q", root=tmp_path)
    assert r.returncode != 0
    assert expect in r.stderr
    assert "Traceback" not in r.stderr
    # nothing ran
    assert run_records(tmp_path, "ParamsFlow") == []


def test_parameter_is_read_only(tmp_path):
    r = aflow("run", flow_path("acc_mutate.py"), "--mode", "param", "-q", root=tmp_path)
    assert r.returncode == 1
    assert "parameter 'alpha' is read-only" in r.stdout + r.stderr


# --------------------------------------------------------------------------------------------
# static checks


INVALID_CASES = {
    "no_start.py": "no 'start' step",
    "no_end.py": "no 'end' step",
    "unknown_target.py": "names 'train', which is not a step",
    "unreachable.py": "step 'lonely': is not reachable",
    "join_mismatch.py": "joins branches of different splits",
    "cross_join.py": "joins branches of different splits",
    "cycle.py": "form a cycle",
    "self_loop2.py": "form a cycle",
    "next_not_last.py": "must be the step's last statement",
    "join_no_inputs.py": "takes no inputs",
    "nonjoin_inputs.py": "takes inputs but no split leads to it",
    "join_single_parent.py": "takes inputs but no split leads to it",
    "no_next.py": "never calls self.next()",
    "end_with_next.py": "end step must not call self.next()",
    "split_no_join.py": "takes no inputs",
    "foreach_no_join.py": "no join closes",
    "foreach_two_targets.py": "a foreach must go to exactly one step",
    "start_with_inputs.py": "start step cannot take inputs",
    "syntax_err.py": "syntax error",
    "no_flow.py": "defines no FlowSpec subclass",
    "next_with_call.py": "self.next()",
    "foreach_not_literal.py": "foreach= takes the artifact name as a string",
    "undecorated_target.py": "names 'helper', which is not a step",
}


def test_invalid_graphs_fail_check_with_file_line(tmp_path):
    failures = []
    for name, expect in INVALID_CASES.items():
        r = aflow("check", str(INVALID / name), root=tmp_path)
        if r.returncode != 1 or expect not in r.stderr or f"{name}:" not in r.stderr:
            failures.append((name, r.returncode, r.stderr))
        if "Traceback" in r.stderr:
            failures.append((name, "traceback", r.stderr))
    assert not failures, failures


def test_invalid_graph_refused_by_run_too(tmp_path):
    r = aflow("run", str(INVALID / "join_mismatch.py"), root=tmp_path)
    assert r.returncode == 1
    assert "join_mismatch.py:23: step 'join'" in r.stderr
    assert run_records(tmp_path, "JoinMismatch") == []


@pytest.mark.parametrize("name", ["self_loop.py", "cycle_join.py"])
def test_cycle_through_start_is_reported_as_cycle(tmp_path, name):
    """self.next(self.start) makes a cycle; check should say so, not only 'end is unreachable'."""
    r = aflow("check", str(INVALID / name), root=tmp_path)
    assert r.returncode == 1
    assert "form a cycle" in r.stderr, r.stderr


def test_valid_tricky_sources_pass_check_and_run(tmp_path):
    r = aflow("check", flow_path("acc_static_ok.py"), root=tmp_path)
    assert r.returncode == 0, r.stderr
    assert "StaticFP: 3 steps, graph is valid." in r.stdout
    r = aflow("run", flow_path("acc_static_ok.py"), "-q", root=tmp_path)
    assert r.returncode == 0, r.stderr
    assert "vals [0, 1, 4, 1] 5 3" in r.stdout


def test_base_flow_subclass_and_python_entry_of_two_flows(tmp_path):
    r = aflow("run", flow_path("acc_base_flow.py"), "--lr", "0.5", "-q", root=tmp_path)
    assert r.returncode == 0, r.stderr
    assert "v 1.0" in r.stdout
    # `python file.py run` runs the class the file instantiates, even with two flows in it
    env = dict(os.environ, AFLOW_DATASTORE_ROOT=str(tmp_path))
    r = subprocess.run(
        [sys.executable, str(INVALID / "two_flows.py"), "run", "-q"],
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
    )
    assert r.returncode == 0, r.stderr
    assert "two" in r.stdout
    # and so does `aflow run file.py` (issue 13: Metaflow runs the one started under __main__)
    r = aflow("run", str(INVALID / "two_flows.py"), "-q", root=tmp_path)
    assert r.returncode == 0 and "] two" in r.stdout and "] one" not in r.stdout, r.stderr


# --------------------------------------------------------------------------------------------
# output


def test_lots_of_output_and_stderr(tmp_path):
    r = aflow("run", flow_path("acc_loud.py"), "--lines", "20000", "-q", root=tmp_path)
    assert r.returncode == 0, r.stderr[-2000:]
    for i in (0, 1):
        assert sum(1 for ln in r.stdout.splitlines() if f"] out {i} " in ln) == 20000
        assert sum(1 for ln in r.stderr.splitlines() if f"] err {i} " in ln) == 20
        assert f"from-shell-{i}" in r.stdout
        assert f"sub-err-{i}" in r.stderr
    assert "unicode: héllo ✓ 日本" in r.stdout
    # A line over 64 KiB keeps its head and tail and says how much of its middle was cut
    # (issue 14: one huge line must not cost its size in memory, or freeze the scheduler).
    long = next(ln for ln in r.stdout.splitlines() if "x" * 1000 in ln)
    cut = r"x \u2026 \[[\d,]+ of this line's 200,0\d\d bytes cut\] \u2026 x"
    assert re.search(cut, long), long[-300:]
    assert r.stdout.count("no trailing newline") == 2
    logs = glob.glob(str(tmp_path / "Loud" / "*" / "shout" / "*" / "*.log"))
    assert len(logs) == 2


def test_failing_step_output_before_failure_is_kept(tmp_path):
    r = aflow("run", flow_path("acc_loud.py"), "--fail", "--lines", "5000", "-q", root=tmp_path)
    assert r.returncode == 1
    assert sum(1 for ln in r.stdout.splitlines() if "] out 1 " in ln) == 5000
    assert "about to fail" in r.stdout
    assert "RuntimeError: loud failure" in r.stderr
    assert 'acc_loud.py", line' in r.stderr


# --------------------------------------------------------------------------------------------
# large artifacts and concurrency


def test_large_numpy_artifact_through_foreach(tmp_path):
    r = aflow("run", flow_path("acc_big.py"), "--mb", "110", "-q", root=tmp_path, timeout=120)
    assert r.returncode == 0, r.stderr
    assert "ok True" in r.stdout


def test_max_workers_is_respected(tmp_path):
    r = aflow(
        "run",
        flow_path("acc_concurrency.py"),
        "--max-workers",
        "2",
        "--secs",
        "0.3",
        "-q",
        root=tmp_path,
    )
    assert r.returncode == 0, r.stderr
    assert "PEAK 2 PIDS 8" in r.stdout
    r = aflow(
        "run",
        flow_path("acc_concurrency.py"),
        "--max-workers",
        "8",
        "--secs",
        "0.5",
        "--use_async",
        "-q",
        root=tmp_path,
    )
    assert r.returncode == 0, r.stderr
    assert "PEAK 8" in r.stdout  # all eight async steps overlapped (the wall time is load's business)


# --------------------------------------------------------------------------------------------
# run_flow from a driver script


def test_run_flow_with_flow_defined_in_guarded_driver_script(tmp_path):
    """The classic pattern: flow class and asyncio driver in one script, guarded by __main__.

    aflow's own error message recommends the `if __name__ == "__main__":` guard, so a guarded
    script must work.
    """
    script = tmp_path / "driver.py"
    script.write_text(
        textwrap.dedent(
            """
            import asyncio
            import aflow
            from aflow import FlowSpec, step


            class Point:
                def __init__(self, x):
                    self.x = x


            class InlineFlow(FlowSpec):
                @step
                def start(self):
                    self.items = [Point(i) for i in range(3)]
                    self.next(self.work, foreach="items")

                @step
                async def work(self):
                    await asyncio.sleep(0.05)
                    self.y = self.input.x * 10
                    self.next(self.join)

                @step
                def join(self, inputs):
                    self.ys = sorted(i.y for i in inputs)
                    self.next(self.end)

                @step
                def end(self):
                    pass


            async def main():
                run = await aflow.run_flow(InlineFlow, datastore_root=%r)
                print("SUCCESS", run.successful)
                if run.successful:
                    print("YS", run.data.ys)


            if __name__ == "__main__":
                asyncio.run(main())
            """
        )
        % str(tmp_path / "store")
    )
    r = subprocess.run(
        [sys.executable, str(script)], capture_output=True, text=True, timeout=300, cwd=tmp_path
    )
    assert "SUCCESS True" in r.stdout, r.stdout + r.stderr
    assert "YS [0, 10, 20]" in r.stdout


def test_run_flow_failure_and_param_errors():
    import tempfile

    from acc_runtime_next import RuntimeNext
    from acc_train import TrainFlow

    import aflow as af

    with tempfile.TemporaryDirectory() as root:

        async def main():
            run = await af.run_flow(RuntimeNext, {"mode": "raise_async"}, datastore_root=root)
            assert run.successful is False
            with pytest.raises(Exception, match="async boom"):
                _ = run.data.where
            for params, msg in [
                ({}, "'name' is required"),
                ({"name": "x", "nope": 1}, "no parameter 'nope'"),
                ({"name": "x", "seed": "abc"}, "as int"),
            ]:
                with pytest.raises(Exception, match=msg):
                    await af.run_flow(TrainFlow, params, datastore_root=root)

        asyncio.run(main())


def test_start_flow_events_and_wait(tmp_path):
    from acc_train import TrainFlow

    import aflow as af

    async def main():
        async with af.start_flow(
            TrainFlow, {"name": "ev"}, max_workers=3, datastore_root=str(tmp_path)
        ) as r:
            events = [ev async for ev in r.events()]
            result = await r.wait()
        names = [type(e).__name__ for e in events]
        assert names[0] == "RunStarted" and names[-1] == "RunFinished"
        assert names.count("TaskStarted") == names.count("TaskFinished") == 31
        logs = [e for e in events if type(e).__name__ == "OutputLine"]
        assert any(e.stream == "stderr" and e.line == "this goes to stderr" for e in logs)
        assert events[-1].status == "done"
        assert result.id == events[0].run_id

    asyncio.run(main())


def test_start_flow_wait_returns_a_run_like_run_flow(tmp_path):
    """`await r.wait()` should give what run_flow gives (.successful, .data), not a bare AsyncRun."""
    from acc_semantics import Semantics

    import aflow as af

    async def main():
        async with af.start_flow(Semantics, datastore_root=str(tmp_path)) as r:
            result = await r.wait()
        assert result.successful is True
        assert result.data.const == 7

    asyncio.run(main())


# --------------------------------------------------------------------------------------------
# cancellation and killing


def _start_sleepy(root: Path, *extra: str) -> subprocess.Popen:
    return subprocess.Popen(
        [
            "aflow",
            "run",
            flow_path("acc_sleepy.py"),
            "--datastore-root",
            str(root),
            "--max-workers",
            "6",
            "--n",
            "12",
            "--secs",
            "30",
            *extra,
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def _wait_for_tasks(root: Path, p: subprocess.Popen, deadline: float = 10.0) -> list[int]:
    t0 = time.monotonic()
    while time.monotonic() - t0 < deadline:
        kids = descendants(p.pid)
        if len(kids) >= 4:
            time.sleep(0.3)
            return descendants(p.pid)
        time.sleep(0.1)
    return descendants(p.pid)


def _check_cancelled_cleanly(root: Path, p: subprocess.Popen, kids: list[int], sig) -> None:
    t0 = time.monotonic()
    p.send_signal(sig)
    try:
        p.communicate(timeout=10)
    except subprocess.TimeoutExpired:
        p.kill()
        p.communicate()
        kill_all(kids)
        pytest.fail(f"aflow did not exit within 10 s of {sig!r}")
    took = time.monotonic() - t0
    time.sleep(0.5)
    left = living(kids)
    kill_all(kids)
    assert p.returncode != 0
    assert took < 6, took
    assert left == [], f"processes left behind: {left}"
    assert tmp_files(root) == []
    n, bad = all_mpk_parse(root)
    assert n >= 1 and bad == []
    (rec,) = run_records(root, "Sleepy")
    assert rec["status"] == "cancelled", rec["status"]


def test_sigint_cancels_run(tmp_path):
    p = _start_sleepy(tmp_path)
    kids = _wait_for_tasks(tmp_path, p)
    assert len(kids) >= 4
    _check_cancelled_cleanly(tmp_path, p, kids, signal.SIGINT)


def test_sigterm_cancels_run(tmp_path):
    """SIGTERM (kill, timeout(1), docker stop) should end the run as cleanly as Ctrl-C."""
    p = _start_sleepy(tmp_path)
    kids = _wait_for_tasks(tmp_path, p)
    assert len(kids) >= 4
    _check_cancelled_cleanly(tmp_path, p, kids, signal.SIGTERM)


def _wait_for(condition, what: str, seconds: float = 120.0) -> None:
    deadline = time.monotonic() + seconds
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.02)


def test_sigkill_leaves_no_half_written_records(tmp_path):
    # Kill the scheduler at two moments defined by what is on disk, not by the clock (a loaded
    # machine is slower): once its run has started, and once the 40 MB start task has committed
    # and the foreach is under way.
    moments = {
        "the run record": lambda: bool(glob.glob(str(tmp_path / "BigFlow" / "*" / "run.mpk"))),
        "the start task's record": lambda: bool(
            glob.glob(str(tmp_path / "BigFlow" / "*" / "start" / "*" / "*.mpk"))
        ),
    }
    for what, moment in moments.items():
        p = subprocess.Popen(
            [
                "aflow",
                "run",
                flow_path("acc_big.py"),
                "--mb",
                "40",
                "--datastore-root",
                str(tmp_path),
                "--max-workers",
                "4",
                "-q",
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        _wait_for(moment, what)
        kids = descendants(p.pid)
        p.send_signal(signal.SIGKILL)
        p.wait()
        # The warm parent notices its scheduler died and stops its tasks, which clean up.
        _wait_for(lambda kids=kids: not living(kids), "the orphaned tasks to stop")
    n, bad = all_mpk_parse(tmp_path)
    assert n >= 2 and bad == []
    assert tmp_files(tmp_path) == []
