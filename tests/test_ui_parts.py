"""The parts of `aflow ui` that need no browser: step states and counts, the DAG's layout, artifact
previews, the read-only store, and the command's refusal to serve beyond loopback unasked."""

from __future__ import annotations

import sys
from typing import Any

import anyio
import numpy as np
import pytest
from typer.testing import CliRunner

from aflow.stores.records import RunRecord, TaskRecord
from aflow.ui import dag
from aflow.ui.preview import describe
from aflow.ui.progress import step_progress
from aflow.ui.reader import ReadOnlyStore, RunSnapshot, TaskState

pytest.importorskip("starlette")

# start -> (foreach) work -> join -> end, plus a static branch around it: the shape of ui_demo.py.
GRAPH: dict[str, Any] = {
    "steps": {
        "start": {"type": "split", "next": ["prepare", "audit"], "split_parents": []},
        "prepare": {"type": "foreach", "next": ["work"], "foreach": "items", "split_parents": ["start"]},
        "work": {
            "type": "linear",
            "next": ["gather"],
            "split_parents": ["start", "prepare"],
            "decorators": {"retry": {"times": 1}},
        },
        "gather": {"type": "join", "next": ["merge"], "split_parents": ["start"]},
        "audit": {"type": "linear", "next": ["merge"], "split_parents": ["start"]},
        "merge": {"type": "join", "next": ["end"], "split_parents": []},
        "end": {"type": "end", "next": [], "split_parents": []},
    }
}


def _task(
    step: str, task_id: int, ok: bool = True, splits: int | None = None, final: bool = True
) -> TaskState:
    record = TaskRecord(
        "F", "1", step, str(task_id), status="done" if ok else "failed", num_splits=splits
    )
    return TaskState(step, str(task_id), 1, record, final)


def _snapshot(status: str, tasks: list[TaskState]) -> RunSnapshot:
    record = RunRecord("F", "1", status=status, graph=GRAPH, heartbeat_at=9e12)
    steps: dict[str, list[TaskState]] = {s: [] for s in GRAPH["steps"]}
    for t in tasks:
        steps[t.step].append(t)
    return RunSnapshot("F", "1", record, record.liveness(0), steps)


def test_step_counts_come_from_the_graph_and_foreach_widths() -> None:
    tasks = [_task("start", 1), _task("prepare", 2, splits=5), _task("audit", 3)]
    tasks += [_task("work", 4 + i) for i in range(3)]
    got = step_progress(_snapshot("running", tasks))
    assert {n: (p.state, p.done, p.expected) for n, p in got.items()} == {
        "start": ("done", 1, 1),
        "prepare": ("done", 1, 1),
        "audit": ("done", 1, 1),
        "work": ("running", 3, 5),  # the foreach's width, before the other two end
        "gather": ("pending", 0, 1),  # one per split task
        "merge": ("pending", 0, 1),
        "end": ("pending", 0, 1),
    }


def test_a_failed_run_marks_the_failed_step_and_what_never_ran() -> None:
    tasks = [_task("start", 1), _task("prepare", 2, splits=2), _task("audit", 3)]
    tasks += [_task("work", 4), _task("work", 5, ok=False)]
    got = step_progress(_snapshot("failed", tasks))
    assert (got["work"].state, got["work"].done, got["work"].failed) == ("failed", 1, 1)
    assert got["gather"].state == "not-run" and got["end"].state == "not-run"
    retrying = [
        _task("start", 1),
        _task("prepare", 2, splits=2),
        _task("work", 4, ok=False, final=False),
    ]
    assert step_progress(_snapshot("running", retrying))["work"].retrying == 1


def test_dag_columns_follow_the_longest_path_and_keep_branches_apart() -> None:
    cols = dag.columns(GRAPH["steps"])
    assert cols == [["start"], ["audit", "prepare"], ["work"], ["gather"], ["merge"], ["end"]]
    svg = dag.draw(GRAPH["steps"], step_progress(_snapshot("running", [])), "/s/{step}")
    assert svg.count('class="node') == 7 and 'href="/s/work"' in svg
    assert svg.count('class="card"') == 2  # only `work` runs once per item: a stack of cards
    assert svg.count("edge foreach") == 1 and svg.count("edge join") == 3


def test_previews_say_type_shape_and_a_clipped_repr() -> None:
    array = describe(np.zeros((1000, 3), dtype=np.int16))
    assert array.type == "numpy.ndarray" and array.text.startswith("shape (1000, 3)  dtype int16")
    assert array.text.count("\n") < 12  # clipped, not a thousand lines
    big = describe(list(range(1_000_000)))
    assert big.type == "list" and big.text.endswith("...]") and len(big.text) < 100

    class Broken:
        def __repr__(self) -> str:
            raise RuntimeError("no repr")

    assert "Broken" in describe(Broken()).text  # a failing repr is no failing page


def test_pandas_previews_show_the_head() -> None:
    pd = pytest.importorskip("pandas")
    frame = describe(pd.DataFrame({"a": range(100), "b": ["x"] * 100}))
    assert frame.type.endswith("DataFrame")
    assert (
        frame.text.startswith("100 rows \N{MULTIPLICATION SIGN} 2 columns")
        and frame.text.count("\n") == 6
    )


def test_the_store_the_ui_reads_refuses_writes(tmp_path: Any) -> None:
    from aflow.stores.local import LocalStore

    store = ReadOnlyStore(LocalStore(tmp_path))

    async def attempt() -> None:
        await store.put("F/1/run.mpk", [b"x"])

    with pytest.raises(PermissionError, match="read-only"):
        anyio.run(attempt)
    assert not (tmp_path / "F").exists()


def test_serving_beyond_loopback_needs_a_flag_and_warns(monkeypatch: pytest.MonkeyPatch) -> None:
    from aflow.cli import ui as ui_cli
    from aflow.cli.app import app

    refused = CliRunner().invoke(app, ["ui", "--host", "0.0.0.0"])
    assert refused.exit_code == 1 and "--allow-remote" in refused.output

    def no_bind(host: str, port: int) -> None:
        raise ui_cli.UIError("not binding in a test")

    monkeypatch.setattr(ui_cli, "_bind", no_bind)
    warned = CliRunner().invoke(app, ["ui", "--host", "0.0.0.0", "--allow-remote"])
    assert "warning: serving on 0.0.0.0" in warned.output and "not binding" in warned.output
    assert ui_cli._is_loopback("127.0.0.1") and ui_cli._is_loopback("::1")
    assert ui_cli._is_loopback("localhost") and not ui_cli._is_loopback("10.1.2.3")


def test_the_command_says_which_extra_is_missing(monkeypatch: pytest.MonkeyPatch) -> None:
    from aflow.cli.app import app

    monkeypatch.setitem(sys.modules, "uvicorn", None)  # as if the `ui` extra were not installed
    result = CliRunner().invoke(app, ["ui"])
    assert result.exit_code == 1 and "pip install -e" in result.output
    assert "[ui]" in result.output and "aflow-engine" not in result.output  # from this checkout


def test_host_names_answered_are_loopbacks_the_bound_host_and_the_allowed_ones() -> None:
    from aflow.ui.guard import host_allowed, host_names

    default = host_names("127.0.0.1")
    assert all(host_allowed(h, default) for h in ("127.0.0.1:8324", "localhost", "[::1]:8324"))
    assert not any(host_allowed(h, default) for h in ("evil.example", "", "[::1", "10.0.0.1:8324"))
    wide = host_names("0.0.0.0", ["box.example"])
    assert host_allowed("box.example:8324", wide) and host_allowed("10.0.0.7:8324", wide)
    assert not host_allowed("evil.example:8324", wide)  # a name is only answered when given


def test_path_segments_must_have_the_shapes_the_engine_gives_names_and_ids() -> None:
    from aflow.ui.guard import path_problem

    assert path_problem("/task/MyFlow/1712345678901234/train_model/42") is None
    assert path_problem("/live/run/Fl%C3%B6w/run-7_b") is None  # an identifier may be non-ASCII
    assert "not a run id" in (path_problem("/run/MyFlow/1.2") or "")
    assert "not a step name" in (path_problem("/raw/MyFlow/1/9lives/1") or "")
    for bad in ("/run/%2e%2e/1", "/run/F/%252e", "/x/a%2fb", "/x/a%5cb", "/x/%00", "/run/../1"):
        assert path_problem(bad), bad


def test_the_local_store_keeps_every_key_inside_its_root(tmp_path: Any) -> None:
    from aflow.stores.base import NotFound
    from aflow.stores.local import LocalFiles, OutsideRoot

    (tmp_path / "beside").mkdir()
    (tmp_path / "beside" / "secret").write_text("x")
    files = LocalFiles(tmp_path / "store")
    files.put("F/1/run.mpk", [b"ok"])
    assert bytes(files.get("F/1/run.mpk")) == b"ok"
    for key in ("../beside/secret", "F/../../beside/secret", "/etc/passwd", "F/./1/run.mpk", ".."):
        with pytest.raises(NotFound):
            files.get(key)
        with pytest.raises(OutsideRoot):
            files.put(key, [b"no"])
        assert not files.exists(key) and files.list(key) == []
    (tmp_path / "store" / "G").symlink_to(tmp_path / "beside", target_is_directory=True)
    with pytest.raises(NotFound, match="symbolic link"):
        files.get("G/secret")
    assert files.list("G") == []
    (tmp_path / "store" / "H").symlink_to(tmp_path / "store" / "F")  # a link within the root is fine
    assert bytes(files.get("H/1/run.mpk")) == b"ok"


def _path_points(d: str) -> list[tuple[float, float]]:
    import re

    return [(float(x), float(y)) for x, y in re.findall(r"(-?[\d.]+),(-?[\d.]+)", d)]


def test_an_edge_skipping_a_step_is_routed_around_its_box() -> None:
    """a -> b -> c plus a -> c: the a -> c edge must not run through b's box (it read as a->b->c)."""
    import re

    steps = {
        "start": {"type": "split", "next": ["b", "c"]},
        "b": {"type": "linear", "next": ["c"]},
        "c": {"type": "join", "next": ["end"]},
        "end": {"type": "end", "next": []},
    }
    lay = dag.layout(steps)
    bx, by = lay.box("b")
    svg = dag.draw(steps, {}, "/s/{step}")
    paths = re.findall(r'<path class="edge[^"]*" d="([^"]+)"', svg)
    skipping = [
        d for d in paths if _path_points(d)[0][0] < bx and _path_points(d)[-1][0] > bx + dag.NODE_W
    ]
    assert len(skipping) == 1
    for x, y in _path_points(skipping[0]):
        inside = bx - 1 < x < bx + dag.NODE_W + 1 and by - 1 < y < by + dag.NODE_H + 1
        assert not inside, (x, y, (bx, by))
    # The old drawing: a straight run at the source's height, through b.
    assert lay.at["start"][1] == lay.at["b"][1]


def test_a_20_step_pipeline_is_drawn_top_to_bottom() -> None:
    names = [f"step_{i:02d}" for i in range(20)]
    steps = {
        n: {"type": "linear", "next": [names[i + 1]] if i + 1 < len(names) else []}
        for i, n in enumerate(names)
    }
    lay = dag.layout(steps)
    assert lay.vertical and lay.width < 400 and lay.height > 20 * dag.NODE_H
    ys = [lay.box(n)[1] for n in names]
    assert ys == sorted(ys) and len({lay.box(n)[0] for n in names}) == 1


def test_live_pages_read_less_often_while_nothing_changes() -> None:
    from aflow.ui.server import MAX_BACKOFF, backoff

    waits = [backoff(1.0, n) for n in range(20)]
    assert waits[:3] == [1.0, 1.0, 1.0]  # a change resets it: the next reads come at `poll`
    assert waits == sorted(waits) and waits[-1] == MAX_BACKOFF
    # A day of a forgotten tab on a quiet store: reads, each one listing per flow.
    assert 86_400 / waits[-1] < 9_000


def test_a_conditional_step_labels_its_cases_and_draws_its_loop_back() -> None:
    steps = {
        "start": {"type": "start", "next": ["check"]},
        "check": {
            "type": "split-switch",
            "next": ["check", "done"],
            "condition": "state",
            "switch_cases": {"again": "check", "stop": "done"},
            "loops_to": ["check"],
        },
        "done": {"type": "linear", "next": ["end"]},
        "end": {"type": "end", "next": []},
    }
    svg = dag.draw(steps, {}, "/s/{step}")
    assert svg.count('class="edge cond"') == 1 and svg.count('class="edge cond loop"') == 1
    assert ">stop<title>when state is stop</title>" in svg
    assert ">again<title>when state is again</title>" in svg
    assert dag.columns(steps) == [["start"], ["check"], ["done"], ["end"]]  # the loop adds no column


def test_a_start_marker_is_taken_only_when_intact_and_its_own_tasks(tmp_path: Any) -> None:
    """A running task's start marker gives its start and foreach index; a damaged marker, or one
    copied from another task's folder, is not taken on trust (the task shows no start)."""
    import time

    from aflow.frames import Frame
    from aflow.stores.local import LocalFiles, LocalStore
    from aflow.stores.records import TaskStart, run_record_key, task_start_key
    from aflow.ui.reader import RunReader

    files, now = LocalFiles(tmp_path), time.time()
    graph = {"steps": {"start": {"type": "start", "next": ["end"]}, "end": {"type": "end", "next": []}}}
    run = RunRecord("F", "1", graph=graph, started_at=now - 9, heartbeat_at=now)
    files.put(run_record_key("F", "1"), [run.pack()])

    def mark(task_id: str, start: TaskStart, damage: bool = False) -> None:
        data = bytearray(start.pack())
        if damage:
            data[12] ^= 0x20
        files.put(task_start_key("F", "1", "start", task_id, 0), [bytes(data)])

    mark("1", TaskStart("F", "1", "start", "1", 0, now - 5, [Frame("split", 1, 3, None)]))
    mark("2", TaskStart("F", "1", "start", "2", 0, now - 4), damage=True)
    mark("3", TaskStart("F", "1", "start", "1", 0, now - 3))  # task 1's, in task 3's folder

    async def read() -> RunSnapshot:
        return await RunReader(ReadOnlyStore(LocalStore(tmp_path)), "F", "1").snapshot()

    tasks = {t.task_id: t for t in anyio.run(read).steps["start"]}
    one = tasks["1"]
    assert (one.status, one.index, one.started, one.exact) == ("running", "1", now - 5, True)
    for other in (tasks["2"], tasks["3"]):
        assert (other.status, other.start, other.started) == ("running", None, None)
