"""The local backend and engine under pressure: wide runs, leftover processes, stopped tasks."""

from __future__ import annotations

import os
import textwrap
from pathlib import Path

import anyio

import aflow
from aflow.engine.flow_loader import load_flow_file
from aflow.graph import FlowGraph


def test_hundreds_of_tasks_at_once(store_root: Path) -> None:
    from hardening import WideFlow

    # 600 running tasks: 1,200 output pipes in the warm parent, and many senders at once.
    run = anyio.run(lambda: aflow.run_flow(WideFlow, params={"width": 600, "nap": 2.0}, max_workers=600))
    assert run.successful, run.error
    assert run["join"].task.data.count == 600


def test_processes_a_task_leaves_behind_are_stopped(store_root: Path) -> None:
    from hardening import LeavesHelperFlow

    run = anyio.run(lambda: aflow.run_flow(LeavesHelperFlow))
    assert run.successful
    pid = run["start"].task.data.helper_pid
    try:
        os.kill(pid, 0)
        with open(f"/proc/{pid}/stat") as f:
            assert f.read().split()[2] == "Z", "the helper is still running"
    except (ProcessLookupError, FileNotFoundError):
        pass


def test_stopped_tasks_keep_their_output(store_root: Path) -> None:
    from hardening import StoppedFlow

    run = anyio.run(lambda: aflow.run_flow(StoppedFlow))
    assert not run.successful and "boom" in run.error
    logs = {
        p.parent.name: p.read_text()
        for p in (store_root / "StoppedFlow" / run.id / "work").glob("*/0.log")
    }
    assert any("sleeping" in text for text in logs.values())  # the sibling that was stopped
    assert any("about to fail" in text for text in logs.values())


def test_merge_include_may_name_what_the_join_set(store_root: Path) -> None:
    from hardening import MergeSelfFlow

    run = anyio.run(lambda: aflow.run_flow(MergeSelfFlow))
    assert run.successful, run.error
    assert run["join"].task.data.z == 3 and run["join"].task.data.shared == "s"


def test_join_straight_after_its_split_is_refused(tmp_path: Path) -> None:
    b_step = "@step\ndef b(self):\n    self.next(self.join)\n"
    for target, extra in (('self.join, foreach="items"', ""), ("self.b, self.join", b_step)):
        path = tmp_path / "flow.py"
        path.write_text(
            textwrap.dedent(
                f"""
                from aflow import FlowSpec, step


                class F(FlowSpec):
                    @step
                    def start(self):
                        self.items = [1, 2]
                        self.next({target})

{textwrap.indent(extra, " " * 20)}
                    @step
                    def join(self, inputs):
                        self.next(self.end)

                    @step
                    def end(self):
                        pass
                """
            )
        )
        problems = FlowGraph(load_flow_file(str(path))).problems
        assert any("follows its split 'start' directly" in str(p) for p in problems), target
