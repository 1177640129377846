"""Metaflow code runs unchanged: the semantics flows written for Metaflow rely on (issue 13).

Each test runs a real flow through the CLI (or `python flow.py`) and reads it back with the client.
"""

from __future__ import annotations

import pickle
import platform
import time
from datetime import datetime
from pathlib import Path

import anyio
import pytest
from conftest import run_cli, run_script

import aflow
from aflow.client import core as client_core

COMPAT = Path(__file__).resolve().parent / "compat_flows"


def latest(flow: str) -> aflow.Run:
    run = aflow.Flow(flow).latest_run
    assert run is not None
    return run


# -- 1. @catch and @timeout -------------------------------------------------------------------


def test_catch_sets_none_on_success_and_keeps_what_the_step_set(store_root: Path) -> None:
    started = time.monotonic()
    result = run_cli("run", str(COMPAT / "catch_flow.py"))
    assert result.returncode == 0, result.stderr
    assert time.monotonic() - started < 40  # the 60 s sleep was stopped by @timeout
    run = latest("CatchCompatFlow")
    assert run.successful
    join = run["join"].task.data
    assert join.results == [1, 3]  # `[i.res for i in inputs if not i.failure]`
    assert join.kept == [10, 20, 30]  # set before the raise, kept
    tasks = {t.data.input if "input" in t else t.data.before: t for t in run["work"]}
    failed = tasks[20]
    caught = failed.data.failure
    assert caught.type == "__main__.Boom" and caught.exception == "no 2"
    assert "raise Boom" in caught.traceback and "raise Boom" in str(caught)
    assert tasks[10].data.failure is None
    # Recorded in the same attempt, and the task counts as done: it has no exception of its own.
    assert failed.current_attempt == 0 and failed.successful and failed.exception is None
    assert "res" not in failed.data

    slow = run["slow"].task
    assert slow.data.timed_out.type == "aflow.exception.TimeoutException"
    assert slow.data.progress == "started" and slow.current_attempt == 0
    assert "@catch: step 'slow' failed" in result.stderr + result.stdout

    retried = run["retried"].task
    assert retried.current_attempt == 1 and retried.data.seen_attempt == 1
    assert retried.data.late.type == "builtins.ValueError"
    assert retried.data.late.exception == "attempt 1 fails"


# -- 4, 10, 11, 12, 13, 14: current, the client's names, lineage, metadata, logs ---------------


def test_current_client_names_and_lineage(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("AFLOW_DATASTORE_ROOT", raising=False)
    monkeypatch.setenv("AFLOW_USER", "ada")
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    root = tmp_path / "their-store"
    result = run_cli(
        "run", str(COMPAT / "lineage_flow.py"), "--datastore-root", str(root), cwd=elsewhere
    )
    assert result.returncode == 0, result.stderr
    assert not (elsewhere / ".aflow").exists()

    # What metadata() and namespace() set for the process, undone after the test.
    monkeypatch.setattr(client_core, "_chosen_store", None)
    monkeypatch.setattr(client_core, "_namespace", client_core._UNSET)
    assert aflow.metadata(f"local@{root}") == f"local@{root}"
    assert aflow.get_metadata() == f"local@{root}"
    assert aflow.default_namespace() == "user:ada"
    assert aflow.get_namespace() == "user:ada"
    run = latest("LineageFlow")
    start = run["start"].task.data
    assert start.parameter_names == ["alpha"]
    assert start.username == "ada" and start.namespace == "user:ada" and start.same_current
    join_task = run["join"].task
    join = join_task.data
    assert join.seen_run == run.id and join.latest == run.id  # 11: the run's own store
    assert join.where == f"local@{root}" and join.me == join_task.pathspec

    # 12: navigation and lineage
    assert run.parent.pathspec == "LineageFlow" and run.path_components == ["LineageFlow", run.id]
    assert join_task.parent.pathspec == f"LineageFlow/{run.id}/join"
    assert join_task.parent.parent == run
    assert join_task.path_components == ["LineageFlow", run.id, "join", join_task.id]
    work = list(run["work"])
    assert sorted(t.pathspec for t in join_task.parent_tasks) == sorted(t.pathspec for t in work)
    assert [t.pathspec for t in run["start"].task.child_tasks] == [t.pathspec for t in work]
    assert [t.pathspec for t in work[0].child_tasks] == [join_task.pathspec]
    assert [s.id for s in run["work"].child_steps] == ["join"]
    assert [s.id for s in join_task.parent.child_steps] == ["end"]
    assert [s.id for s in run["join"].parent_steps] == ["work"]
    assert run.origin_pathspec is None and join_task.origin_pathspec is None
    other = aflow.Task(join_task.pathspec, _namespace_check=False)
    assert other == join_task

    # 13: metadata
    meta = join_task.metadata_dict
    assert meta["attempt"] == "0" and meta["python_version"] == platform.python_version()
    assert meta["ds-type"] == "local" and "origin-run-id" not in meta
    assert [m.value for m in join_task.metadata if m.type == "attempt"] == ["0"]

    # 14: loglines as (datetime, text)
    lines = list(work[1].loglines("stdout"))
    assert [text for _, text in lines] == ["square 4"]
    assert isinstance(lines[0][0], datetime)


def test_resumed_run_knows_its_origin(store_root: Path, tmp_path: Path, monkeypatch) -> None:
    marker = tmp_path / "marker"
    monkeypatch.setenv("AFLOW_TEST_MARKER", str(marker))
    flow = COMPAT / "resume_flow.py"
    assert run_cli("run", str(flow)).returncode == 1
    first = latest("ResumeCompatFlow")
    marker.write_text("go")
    result = run_cli("resume", str(flow))
    assert result.returncode == 0, result.stderr
    run = latest("ResumeCompatFlow")
    assert run.id != first.id
    assert run.origin_pathspec == f"ResumeCompatFlow/{first.id}"
    assert run["middle"].origin_pathspec == f"ResumeCompatFlow/{first.id}/middle"
    start = run["start"].task
    origin_start = first["start"].task
    assert start.origin_pathspec == origin_start.pathspec
    meta = start.metadata_dict
    assert meta["origin-run-id"] == first.id and meta["origin-task-id"] == origin_start.id
    middle = run["middle"].task
    assert middle.origin_pathspec is None
    assert middle.metadata_dict["origin-run-id"] == first.id
    assert "origin-task-id" not in middle.metadata_dict


def test_a_task_killed_by_a_signal_says_so(store_root: Path) -> None:
    result = run_cli("run", str(COMPAT / "crash_flow.py"))
    assert result.returncode == 1
    assert "killed by SIGSEGV" in result.stdout + result.stderr
    task = latest("CrashFlow")["start"].task
    assert task.finished and not task.successful
    assert task.exception.type == "aflow.exception.TaskKilled"
    assert "killed by SIGSEGV" in task.exception.exception
    assert "killed by SIGSEGV" in task.stderr and "about to crash" in task.stdout


# -- 2, 3: parameters from the environment, separator=, IncludeFile read reliably --------------


def test_parameter_defaults_from_the_environment_and_separator(
    store_root: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("AFLOW_TEST_TABLE", str(tmp_path / "table.csv"))
    flow = str(COMPAT / "params_flow.py")
    plain = run_cli("run", flow)
    assert plain.returncode == 0, plain.stderr
    got = latest("ParamsCompatFlow")["start"].task.data.got
    assert got == {"table": "a,b\n1,2\n", "alpha": 1, "words": ["a", "b"], "region": "eu"}

    monkeypatch.setenv("METAFLOW_RUN_ALPHA", "5")  # Metaflow's variable, as deployments set it
    monkeypatch.setenv("METAFLOW_RUN_REGION_NAME", "ignored: aflow's variable wins")
    monkeypatch.setenv("AFLOW_RUN_REGION_NAME", "us")
    result = run_cli("run", flow, "--words", "x,y,z")
    assert result.returncode == 0, result.stderr
    got = latest("ParamsCompatFlow")["start"].task.data.got
    assert got == {"table": "a,b\n1,2\n", "alpha": 5, "words": ["x", "y", "z"], "region": "us"}
    assert run_cli("run", flow, "--alpha", "7").returncode == 0
    assert latest("ParamsCompatFlow")["start"].task.data.got["alpha"] == 7  # the command line wins


def test_separator_needs_a_string_parameter() -> None:
    with pytest.raises(aflow.exception.ParameterError, match="type must be str"):
        aflow.Parameter("n", default=1, type=int, separator=",")


# -- 5, 6: class-level constants; the private attributes Metaflow code reads --------------------


def test_class_constants_are_read_only_artifacts(store_root: Path) -> None:
    result = run_cli("run", str(COMPAT / "constants_flow.py"))
    assert result.returncode == 0, result.stderr
    run = latest("ConstantsFlow")
    start = run["start"].task.data
    assert "read-only" in start.refused and "'K'" in start.refused
    assert run.data.K == 123 and run.data.LABEL == "const" and run.data.ITEMS == [10, 20]
    assert run["join"].task.data.K == 123 and run["start"].task.data.K == 123
    assert run["join"].task.data.in_join == (123, 4)
    assert start.params == ["alpha"]  # constants are not parameters

    assert start.types == {"work": "linear", "join": "join", "end": "end"}
    assert start.join_in == ["work"] and start.start_out == ["work"]
    assert start.current_step == "start"
    work = sorted((t.data for t in run["work"]), key=lambda d: d.stack[0][3])
    assert [w.stack for w in work] == [
        [("start", "ITEMS", 2, 0, 10)],
        [("start", "ITEMS", 2, 1, 20)],
    ]
    assert work[1].plain == [(1, 2, 20)] and work[0].seen == (123, "const", "work")


# -- 9: the command-line habits (--help is tested with the CLI's own tests) ---------------------


def test_metaflow_command_line_habits(
    store_root: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    run_id_file = tmp_path / "run-id"
    monkeypatch.setenv("AFLOW_TEST_RUN_ID_FILE", str(run_id_file))
    flow = COMPAT / "cli_flow.py"
    result = run_script(flow, "--no-pylint", "--quiet", "run", "--run-id-file", str(run_id_file))
    assert result.returncode == 0, result.stderr
    run = latest("CliCompatFlow")
    start = run["start"].task
    assert start.data.run_id_file_said == run.id == run_id_file.read_text()  # before the first task

    dumped = run_script(flow, "--quiet", "dump", f"{run.id}/start/{start.id}")
    assert dumped.returncode == 0, dumped.stderr
    assert "own_run_id: '" + run.id + "'" in dumped.stdout
    assert "blob: <" in dumped.stdout and "over --max-value-size" in dumped.stdout
    assert "_hidden" not in dumped.stdout and "Dumping output" not in dumped.stderr

    step = run_cli("dump", str(flow), f"{run.id}/end", "--private", "--max-value-size", "0")
    assert step.returncode == 0, step.stderr
    assert "answer:" in step.stdout and "Dumping output of run_id=" in step.stderr
    out = tmp_path / "dump.pkl"
    written = run_cli("dump", "CliCompatFlow", f"latest/start/{start.id}", "--file", str(out))
    assert written.returncode == 0, written.stderr
    assert pickle.loads(out.read_bytes())[start.pathspec]["blob"] == b"x" * 5000


# -- 15: Runner -----------------------------------------------------------------------------


def test_runner_runs_a_flow_file_from_python(store_root: Path) -> None:
    flow = str(COMPAT / "runner_flow.py")
    runner = aflow.Runner(flow, show_output=False)
    with runner.run(alpha=3, tags=["nightly"], loud=False, quiet=True) as running:
        assert running.status == "successful" and running.returncode == 0
        assert running.run.data.result == 6 and "nightly" in running.run.tags
        assert running.run.data.loud_seen is False
        assert "computing with alpha=3" in running.stdout
    with aflow.Runner(flow, show_output=False).run(alpha=-1) as failed:
        assert failed.status == "failed" and not failed.run.successful
        assert "alpha must be >= 0" in failed.stderr

    async def started() -> tuple[str | None, aflow.ExecutingRun]:
        async with aflow.Runner(flow, show_output=False) as runner:
            running = await runner.async_run(alpha=5)
            seen = running.run_id  # known once the run exists, before it ends
            await running.wait(timeout=120)
            return seen, running

    seen, running = anyio.run(started)
    assert seen is not None and running.status == "successful"
    assert running.run.id == seen and running.run.data.result == 10


# -- 8: what Metaflow's graph check accepts ------------------------------------------------------


def test_two_flows_in_a_file_and_a_conditional_return(store_root: Path) -> None:
    flow = COMPAT / "two_flows.py"
    checked = run_cli("check", str(flow))
    assert checked.returncode == 0, checked.stderr
    result = run_cli("run", str(flow))
    assert result.returncode == 0, result.stderr
    assert latest("MainFlow").data.which == "main"
    script = run_script(flow, "run")
    assert script.returncode == 0, script.stderr
    assert len(list(aflow.Flow("MainFlow").runs())) == 2
    named = run_cli("run", f"{flow}:HelperFlow")
    assert named.returncode == 0, named.stderr
    assert latest("HelperFlow").data.which == "helper"


# -- 7: @secrets ----------------------------------------------------------------------------------

SECRET_VALUES = {
    "DB_USER": "ada",
    "DB_PASSWORD": "correct horse battery staple",
    "API_TOKEN": "tok-5f1e2d3c4b5a",
    "secret_1": "Pizza is a vegetable.",
    "LOCAL_KEY": "from a local file 7a9",
}


def test_secrets_are_the_tasks_environment_and_stored_nowhere(
    store_root: Path, tmp_path: Path, moto_s3_endpoint: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    import hashlib
    import json

    import boto3

    for name, value in {
        "AWS_ENDPOINT_URL_SECRETS_MANAGER": moto_s3_endpoint,
        "AWS_ENDPOINT_URL_STS": moto_s3_endpoint,
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_DEFAULT_REGION": "us-east-1",
    }.items():
        monkeypatch.setenv(name, value)
    monkeypatch.delenv("AWS_PROFILE", raising=False)
    client = boto3.client("secretsmanager", endpoint_url=moto_s3_endpoint)
    db = json.dumps({"DB_USER": "ada", "DB-PASSWORD": SECRET_VALUES["DB_PASSWORD"]})
    for secret_id, text in (("db-creds", db), ("plain-token", SECRET_VALUES["API_TOKEN"])):
        try:
            client.create_secret(Name=secret_id, SecretString=text)
        except client.exceptions.ResourceExistsException:
            client.put_secret_value(SecretId=secret_id, SecretString=text)
    local = tmp_path / "secrets.json"
    local.write_text(json.dumps({"LOCAL_KEY": SECRET_VALUES["LOCAL_KEY"]}))
    monkeypatch.setenv("AFLOW_TEST_SECRET_FILE", str(local))

    result = run_cli("run", f"{COMPAT / 'secrets_flow.py'}:SecretsFlow")
    assert result.returncode == 0, result.stderr
    run = latest("SecretsFlow")
    digests = {k: hashlib.sha256(v.encode()).hexdigest() for k, v in SECRET_VALUES.items()}
    assert run["start"].task.data.seen == digests
    assert run.data.visible_later == []  # the task's environment only
    stored = b"".join(p.read_bytes() for p in store_root.rglob("*") if p.is_file())
    for name, value in SECRET_VALUES.items():
        if name != "secret_1":  # an inline secret is written in the flow's source, stored with it
            assert value.encode() not in stored and value not in result.stdout + result.stderr

    missing = run_cli("run", f"{COMPAT / 'secrets_flow.py'}:MissingSecretFlow")
    assert missing.returncode == 1
    assert "no-such-secret" in missing.stdout + missing.stderr
