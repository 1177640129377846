"""Resume as a Metaflow user expects it: the default origin is the latest run started with `run`
(and aflow says which), and --clone-changed reuses steps whose code changed, as Metaflow does."""

from __future__ import annotations

from pathlib import Path

from conftest import run_cli

import aflow

FLOW = """
from aflow import FlowSpec, step


class ResumeFlow(FlowSpec):
    @step
    def start(self):
        self.x = {value}
        self.next(self.end)

    @step
    def end(self):
        pass
"""


def test_default_origin_and_clone_changed(store_root: Path, tmp_path: Path) -> None:
    flow = tmp_path / "resume_flow.py"
    flow.write_text(FLOW.format(value=1))
    assert run_cli("run", str(flow)).returncode == 0
    first = aflow.Flow("ResumeFlow").latest_run.id
    for _ in range(2):  # the second resume still picks the run, not the first resume
        done = run_cli("resume", str(flow))
        assert done.returncode == 0, done.stderr
        assert f"Resuming ResumeFlow/{first}: the latest run started with `run`" in done.stderr
        assert aflow.Flow("ResumeFlow").latest_run.origin_run_id == first

    flow.write_text(FLOW.format(value=2))  # the step's code changed since the origin run
    assert run_cli("resume", str(flow), "--origin-run-id", first).returncode == 0
    assert aflow.Flow("ResumeFlow").latest_run["start"].task.data.x == 2  # rerun
    assert run_cli("resume", str(flow), "--origin-run-id", first, "--clone-changed").returncode == 0
    assert aflow.Flow("ResumeFlow").latest_run["start"].task.data.x == 1  # reused, as Metaflow


def test_resume_help_explains_the_difference() -> None:
    done = run_cli("resume", "--help")
    assert "Unlike Metaflow" in done.stdout and "--clone-changed" in done.stdout
