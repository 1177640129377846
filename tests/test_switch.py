"""Conditional steps and recursion (Metaflow 2.18+): the graph check, the scheduler, resume,
`show` and the client."""

from __future__ import annotations

import sys
import textwrap
from pathlib import Path

import anyio
import pytest

import aflow
from aflow.engine.flow_loader import load_flow_file
from aflow.graph import FlowGraph
from aflow.stores.records import TaskRecord

sys.path.insert(0, str(Path(__file__).parent / "wider_flows"))
from conftest import run_script

FLOW = Path(__file__).parent / "wider_flows" / "switch_flow.py"
HEADER = "from aflow import FlowSpec, step\n\n\nclass F(FlowSpec):\n"


def test_switch_and_loop_run(store_root: Path) -> None:
    from switch_flow import SwitchFlow

    run = anyio.run(lambda: aflow.run_flow(SwitchFlow, params={"mode": "slow"}))
    assert run.successful, run.error
    assert run.data.trail == ["start", "slow", "loop1", "loop2", "loop3", "b"]
    assert "fast" not in run  # the branch not taken has no tasks
    assert len(list(run["loop"])) == 3 and len(list(run["check"])) == 3
    fast = anyio.run(lambda: aflow.run_flow(SwitchFlow, params={"rounds": 1}))
    assert fast.data.trail == ["start", "fast", "loop1", "b"]


def test_resume_reuses_every_iteration(store_root: Path) -> None:
    from switch_flow import SwitchFlow

    first = anyio.run(lambda: aflow.run_flow(SwitchFlow, params={"rounds": 2}))
    resumed = anyio.run(lambda: aflow.resume_flow(SwitchFlow, first.id, "pick"))
    assert resumed.successful, resumed.error
    assert resumed.data.trail == ["start", "fast", "loop1", "loop2", "b"]
    counts = sorted(t.data.count for t in resumed["loop"])
    assert counts == [1, 2]
    records = [
        TaskRecord.unpack(p.read_bytes())
        for p in (store_root / "SwitchFlow" / resumed.id / "loop").glob("*/0.mpk")
    ]
    assert len(records) == 2 and all(r.cloned_from for r in records)  # both iterations reused


def test_no_case_matches_fails_with_the_cases(store_root: Path) -> None:
    from switch_flow import SwitchFlow

    run = anyio.run(lambda: aflow.run_flow(SwitchFlow, params={"mode": "medium"}))
    assert not run.successful
    assert "condition 'mode' is 'medium', which no case names" in run.error


def test_show_names_the_condition(store_root: Path) -> None:
    done = run_script(FLOW, "show")
    assert done.returncode == 0, done.stderr
    assert "by mode: fast → fast, slow → slow" in done.stdout
    assert "loops back to loop" in done.stdout
    dot = run_script(FLOW, "output-dot")
    assert '"check" -> "loop" [label="again = True"]' in dot.stdout


def _problems(tmp_path: Path, body: str) -> list[str]:
    path = tmp_path / "flow.py"
    path.write_text(HEADER + textwrap.indent(textwrap.dedent(body), "    "))
    return [f"{p.step}: {p.message}" for p in FlowGraph(load_flow_file(str(path))).problems]


def test_graph_check(tmp_path: Path) -> None:
    # A switch straight into a join.
    problems = _problems(
        tmp_path,
        """
        @step
        def start(self):
            self.next(self.a, self.b)
        @step
        def a(self):
            self.x = 1
            self.next({1: self.j, 2: self.c}, condition="x")
        @step
        def c(self):
            self.next(self.j)
        @step
        def b(self):
            self.next(self.j)
        @step
        def j(self, inputs):
            self.next(self.end)
        @step
        def end(self):
            pass
    """,
    )
    assert any("leads straight to this join" in p for p in problems), problems
    # A loop that is not conditional is still a cycle; a loop out of a split is refused.
    problems = _problems(
        tmp_path,
        """
        @step
        def start(self):
            self.next(self.a)
        @step
        def a(self):
            self.next(self.start)
        @step
        def end(self):
            pass
    """,
    )
    assert any("form a cycle" in p for p in problems), problems
    problems = _problems(
        tmp_path,
        """
        @step
        def start(self):
            self.next(self.a, self.b)
        @step
        def a(self):
            self.next({"x": self.start, "y": self.j}, condition="k")
        @step
        def b(self):
            self.next(self.j)
        @step
        def j(self, inputs):
            self.next(self.end)
        @step
        def end(self):
            pass
    """,
    )
    assert any("from inside a split" in p or "straight to this join" in p for p in problems)
    problems = _problems(
        tmp_path,
        """
        @step
        def start(self):
            self.next(self.end, condition="k")
        @step
        def end(self):
            pass
    """,
    )
    assert any("condition= goes with a dict of steps" in p for p in problems), problems
    # Branches of a static split still need a join.
    problems = _problems(
        tmp_path,
        """
        @step
        def start(self):
            self.next(self.a, self.b)
        @step
        def a(self):
            self.next(self.end)
        @step
        def b(self):
            self.next(self.end)
        @step
        def end(self):
            pass
    """,
    )
    assert any("takes no inputs" in p for p in problems), problems


def test_valid_switch_graph() -> None:
    graph = FlowGraph(load_flow_file(str(FLOW)))
    assert graph.problems == []
    assert graph["start"].type == "split-switch" and graph["check"].loops_to == ["loop"]
    assert graph.to_dict()["steps"]["pick"]["switch_cases"] == {"config:cfg.pick": "b", "other": "end"}


@pytest.mark.parametrize("rounds", [0])
def test_zero_rounds_still_runs_loop_once(store_root: Path, rounds: int) -> None:
    from switch_flow import SwitchFlow

    run = anyio.run(lambda: aflow.run_flow(SwitchFlow, params={"rounds": rounds}))
    assert run.data.count == 1
