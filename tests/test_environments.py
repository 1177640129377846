"""@pypi / @conda step environments: made once, cached, the same locally and in a container."""

from __future__ import annotations

from pathlib import Path

import anyio
import pytest

from aflow import namespace, run_flow
from aflow.engine import environments
from aflow.engine.flow_loader import load_flow_file
from aflow.exception import AflowException

FLOWS = Path(__file__).parent / "env_flows"


@pytest.fixture
def env_cache(tmp_path_factory, monkeypatch):
    cache = tmp_path_factory.mktemp("envs")
    monkeypatch.setenv("AFLOW_ENV_CACHE", str(cache))
    namespace(None)
    return cache


def run(name: str, **options):
    flow_cls = load_flow_file(str(FLOWS / f"{name}.py"))
    return anyio.run(lambda: run_flow(flow_cls, **options))


def test_pypi_step_gets_its_exact_version_and_second_run_reuses_it(env_cache, tmp_path, monkeypatch):
    root = str(tmp_path / "store")
    first = run("pypi_six", datastore_root=root)
    assert first.successful
    start = first["start"].task
    assert start.data.six_version == "1.16.0"
    assert first["end"].task.data.scheduler_six != "1.16.0"  # the scheduler's own six
    assert start.data.python.startswith(str(env_cache))
    record_key = anyio.run(start._core.record_or_none).env_key
    assert record_key and (env_cache / record_key / ".aflow-ready").exists()
    # The lock is in the datastore, beside the runs.
    assert (Path(root) / "_environments" / f"{record_key}.lock").exists()

    calls: list[list[str]] = []
    real = environments._run
    monkeypatch.setattr(environments, "_run", lambda args, what: calls.append(args) or real(args, what))
    second = run("pypi_six", datastore_root=root)
    assert second.successful and second["start"].task.data.six_version == "1.16.0"
    assert calls == []  # no venv made, no pip run


def test_bad_package_fails_before_any_task_with_pips_reason(env_cache, tmp_path):
    with pytest.raises(AflowException) as caught:
        run("pypi_bad", datastore_root=str(tmp_path / "store"))
    text = str(caught.value)
    assert "step 'start'" in text and "aflow-no-such-package-4711" in text
    assert "No matching distribution" in text or "Could not find a version" in text, text
    assert not (tmp_path / "store" / "PypiBadFlow").exists()  # no run was started


def test_conda_without_a_conda_tool_fails_before_the_run(env_cache, tmp_path, monkeypatch):
    monkeypatch.setenv("PATH", str(tmp_path / "empty"))
    with pytest.raises(AflowException, match="needs micromamba, mamba or conda on PATH"):
        run("conda_flow", datastore_root=str(tmp_path / "store"))
    assert not (tmp_path / "store" / "CondaFlow").exists()


def test_flow_level_base_merges_into_steps():
    from aflow.decorators import step_decorators

    flow_cls = load_flow_file(str(FLOWS / "conda_flow.py"))
    decorators = step_decorators(flow_cls, ["start", "end"])
    assert decorators["start"]["conda"]["libraries"] == {"numpy": "1.26.4"}
    assert decorators["start"]["conda"]["python"] == "3.11"
    assert "conda" not in decorators["end"]  # @conda(disabled=True)


def test_same_spec_same_key_other_spec_other_key():
    a = environments.env_spec("s", {"pypi": {"packages": {"six": "1.16.0"}}}, ("msgpack==1",))
    b = environments.env_spec("t", {"pypi": {"packages": {"six": "1.16.0"}}}, ("msgpack==1",))
    c = environments.env_spec("s", {"pypi": {"packages": {"six": "1.15.0"}}}, ("msgpack==1",))
    assert a is not None and b is not None and c is not None
    assert a.key == b.key != c.key
    assert a.requirements == ["six==1.16.0"]


def test_two_runs_making_one_environment_at_once_take_turns(env_cache, monkeypatch):
    import threading

    spec = environments.env_spec("s", {"pypi": {"packages": {"six": "1.16.0"}}}, ())
    assert spec is not None
    made: list[str] = []
    real = environments._run
    monkeypatch.setattr(
        environments, "_run", lambda args, what: made.append(what) or real(args, what)
    )
    results: list[tuple] = []
    threads = [
        threading.Thread(target=lambda: results.append(environments.ensure(spec, None, ["s"])))
        for _ in range(3)
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert made.count("making the venv") == 1
    assert sorted(r[2] for r in results) == [False, False, True]
    assert len({r[1] for r in results}) == 1  # one lock, the same for all
