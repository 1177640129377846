"""@project (branches, current.*, the client's namespaces) and @schedule/@trigger/@trigger_on_finish
(accepted, recorded, no production scheduler)."""

from __future__ import annotations

import sys
from pathlib import Path

import anyio
import pytest

import aflow
from aflow.exception import AflowException
from aflow.projects import branch_of
from aflow.stores.records import RunRecord, run_record_key

sys.path.insert(0, str(Path(__file__).parent / "wider_flows"))
from conftest import run_script

FLOW = Path(__file__).parent / "wider_flows" / "project_flow.py"


def test_branches_current_and_tags(store_root: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from project_flow import ProjectFlow

    monkeypatch.setenv("AFLOW_USER", "alice")
    run = anyio.run(lambda: aflow.run_flow(ProjectFlow))
    assert run.successful, run.error
    assert run["start"].task.data.project == (
        "demo", "user.alice", True, False, "demo.user.alice.ProjectFlow",
    )  # fmt: skip
    assert {"project:demo", "project_branch:user.alice"} <= run.system_tags
    record = RunRecord.unpack((store_root / run_record_key("ProjectFlow", run.id)).read_bytes())
    assert record.triggers == {
        "schedule": {"cron": "0 * * * ? *"},
        "trigger": {"event": "data_ready"},
        "trigger_on_finish": {"flow": "UpstreamFlow"},
    }

    done = run_script(FLOW, "--branch", "feature", "--production", "run")
    assert done.returncode == 0, done.stderr
    prod = anyio.run(lambda: aflow.run_flow(ProjectFlow, production=True))
    aflow.namespace("project_branch:prod.feature")
    try:
        found = list(aflow.Flow("ProjectFlow").runs())
        assert len(found) == 1
        assert found[0]["start"].task.data.project[1:4] == ("prod.feature", False, True)
        aflow.namespace("project_branch:prod")
        assert [r.id for r in aflow.Flow("ProjectFlow").runs()] == [prod.id]
        aflow.namespace("project:demo")
        assert len(list(aflow.Flow("ProjectFlow").runs())) == 3
    finally:
        aflow.namespace(None)


def test_branch_names_and_mistakes() -> None:
    assert branch_of("p", "b", False, "u") == "test.b"
    assert branch_of("p", None, True, "u") == "prod"
    with pytest.raises(AflowException, match="lowercase"):
        branch_of("Bad-Name", None, False, "u")
    with pytest.raises(AflowException, match="needs a name"):
        branch_of("", None, False, "u")


def test_without_project_branch_is_refused(store_root: Path) -> None:
    done = run_script(Path(__file__).parent / "wider_flows" / "params_flow.py", "run", "--branch", "x")
    assert done.returncode == 1 and "need @project" in done.stderr


def test_scheduler_commands_say_there_is_none(store_root: Path) -> None:
    done = run_script(FLOW, "step-functions", "create")
    assert done.returncode == 2
    assert "no production scheduler" not in done.stdout
    assert "cannot deploy to a production scheduler" in done.stderr
