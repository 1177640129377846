"""The graph is read from the source and every mistake is reported with its step and file:line."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest
from conftest import EXAMPLES, FLOWS, run_cli

from aflow.engine.flow_loader import load_flow_file
from aflow.exception import FlowDefinitionError
from aflow.graph import FlowGraph

HEADER = "from aflow import FlowSpec, step\n\n\nclass F(FlowSpec):\n"


def problems_of(tmp_path: Path, body: str) -> list[tuple[str | None, int | None, str]]:
    path = tmp_path / "flow.py"
    path.write_text(HEADER + textwrap.indent(textwrap.dedent(body), "    "))
    graph = FlowGraph(load_flow_file(str(path)))
    return [(p.step, p.line, p.message) for p in graph.problems]


def line_of(tmp_path: Path, text: str) -> int:
    lines = (tmp_path / "flow.py").read_text().splitlines()
    return next(i for i, line in enumerate(lines, 1) if text in line)


def test_examples_are_valid() -> None:
    for path in [*EXAMPLES.glob("*.py"), FLOWS / "nested.py"]:
        graph = FlowGraph(load_flow_file(str(path)))
        assert graph.problems == [], path


def test_node_types_and_joins() -> None:
    graph = FlowGraph(load_flow_file(str(FLOWS / "nested.py")))
    assert graph["start"].type == "foreach"
    assert graph["per_number"].type == "split"
    assert graph["rejoin"].type == "join"
    assert graph["per_number"].matching_join == "rejoin"
    assert graph["start"].matching_join == "join_letters"
    assert graph["left"].split_parents == ["start", "per_letter", "per_number"]
    assert graph.order[0] == "start" and graph.order[-1] == "end"


def test_missing_start_and_end(tmp_path: Path) -> None:
    found = problems_of(
        tmp_path,
        """
        @step
        def begin(self):
            self.next(self.finish)

        @step
        def finish(self):
            self.next(self.begin)
        """,
    )
    messages = " ".join(m for _, _, m in found)
    assert "no 'start' step" in messages and "no 'end' step" in messages


def test_unknown_target_names_step_and_line(tmp_path: Path) -> None:
    found = problems_of(
        tmp_path,
        """
        @step
        def start(self):
            self.next(self.nowhere)

        @step
        def end(self):
            pass
        """,
    )
    step, line, message = found[0]
    assert step == "start" and "'nowhere'" in message
    assert line == line_of(tmp_path, "self.next(self.nowhere)")


def test_unreachable_step(tmp_path: Path) -> None:
    found = problems_of(
        tmp_path,
        """
        @step
        def start(self):
            self.next(self.end)

        @step
        def lonely(self):
            self.next(self.end)

        @step
        def end(self):
            pass
        """,
    )
    assert found == [("lonely", line_of(tmp_path, "def lonely"), "is not reachable from 'start'")]


def test_next_missing_twice_or_not_last(tmp_path: Path) -> None:
    found = problems_of(
        tmp_path,
        """
        @step
        def start(self):
            self.x = 1
            self.next(self.a)

        @step
        def a(self):
            self.next(self.b)
            self.next(self.b)

        @step
        def b(self):
            self.x = 2
            return
            self.next(self.c)

        @step
        def c(self):
            if self.x:
                self.next(self.end)

        @step
        def d(self):
            self.x = 2

        @step
        def end(self):
            pass
        """,
    )

    def about(step: str) -> str:
        return " | ".join(m for s, _, m in found if s == step)

    assert "more than once" in about("a")
    assert "returns before calling self.next()" in about("b")
    assert ("b", line_of(tmp_path, "return")) in [(s, line) for s, line, _ in found]
    assert "last statement" in about("c")
    assert "never calls self.next()" in about("d")


def test_join_must_match_its_split(tmp_path: Path) -> None:
    found = problems_of(
        tmp_path,
        """
        @step
        def start(self):
            self.next(self.a, self.b)

        @step
        def a(self):
            self.next(self.join_a)

        @step
        def b(self):
            self.next(self.end)

        @step
        def join_a(self, inputs):
            self.next(self.end)

        @step
        def end(self):
            pass
        """,
    )
    messages = {s: m for s, _, m in found}
    assert "several incoming steps" in messages["end"]


def test_branches_joined_by_two_steps(tmp_path: Path) -> None:
    found = problems_of(
        tmp_path,
        """
        @step
        def start(self):
            self.next(self.a, self.b)

        @step
        def a(self):
            self.next(self.j1)

        @step
        def b(self):
            self.next(self.j2)

        @step
        def j1(self, inputs):
            self.next(self.j2)

        @step
        def j2(self, inputs):
            self.next(self.end)

        @step
        def end(self):
            pass
        """,
    )
    assert found, "two joins for one split must be reported"


def test_join_without_split_and_non_join_with_many_inputs(tmp_path: Path) -> None:
    found = problems_of(
        tmp_path,
        """
        @step
        def start(self):
            self.next(self.j)

        @step
        def j(self, inputs):
            self.next(self.end)

        @step
        def end(self):
            pass
        """,
    )
    assert found[0][0] == "j" and "no split leads to it" in found[0][2]


def test_cycle(tmp_path: Path) -> None:
    found = problems_of(
        tmp_path,
        """
        @step
        def start(self):
            self.next(self.a)

        @step
        def a(self):
            self.next(self.b)

        @step
        def b(self):
            self.next(self.a)

        @step
        def end(self):
            pass
        """,
    )
    assert any("cycle" in m for _, _, m in found)


def test_foreach_needs_a_string_and_one_target(tmp_path: Path) -> None:
    found = problems_of(
        tmp_path,
        """
        @step
        def start(self):
            self.items = [1]
            self.next(self.a, self.b, foreach="items")

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
    assert any("exactly one step" in m for _, _, m in found)


def test_check_command_prints_file_and_line() -> None:
    result = run_cli("check", str(FLOWS / "invalid_graph.py"))
    assert result.returncode == 1
    path = FLOWS / "invalid_graph.py"
    assert f"{path}:11: step 'a':" in result.stderr
    assert f"{path}:16: step 'b':" in result.stderr
    assert f"{path}:20: step 'orphan': is not reachable" in result.stderr
    assert "Traceback" not in result.stderr


def test_check_valid_flow() -> None:
    result = run_cli("check", str(EXAMPLES / "foreach.py"))
    assert result.returncode == 0, result.stderr
    assert "graph is valid" in result.stdout


def test_syntax_error_is_located(tmp_path: Path) -> None:
    path = tmp_path / "broken.py"
    path.write_text(HEADER + "    @step\n    def start(self)\n        pass\n")
    result = run_cli("check", str(path))
    assert result.returncode == 1
    assert f"{path}:6:" in result.stderr and "syntax error" in result.stderr


def test_run_refuses_invalid_flow_before_anything_runs(store_root: Path) -> None:
    result = run_cli("run", str(FLOWS / "invalid_graph.py"))
    assert result.returncode == 1
    assert "is not reachable" in result.stderr
    assert not store_root.exists()


@pytest.mark.parametrize("name", ["linear", "branch", "foreach", "numpy_transfer"])
def test_graph_dict_is_serialisable(name: str) -> None:
    import msgpack

    graph = FlowGraph(load_flow_file(str(EXAMPLES / f"{name}.py")))
    assert msgpack.unpackb(msgpack.packb(graph.to_dict()))["steps"]["end"]["type"] == "end"


def test_flow_definition_error_lists_problems(tmp_path: Path) -> None:
    path = tmp_path / "flow.py"
    path.write_text(HEADER + "    @step\n    def start(self):\n        self.next(self.x)\n")
    with pytest.raises(FlowDefinitionError) as info:
        FlowGraph(load_flow_file(str(path))).check()
    assert len(info.value.problems) == 2  # unknown target, and no end step
