"""`Config` and `config_expr`: read once when a run starts, usable in decorators, parameter
defaults and steps; given on the command line or by default; stored with the run."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import anyio
import pytest

import aflow
from aflow.config import Config, ConfigValue, read_configs
from aflow.exception import AflowException, ParameterError
from aflow.stores.records import RunRecord, run_record_key

sys.path.insert(0, str(Path(__file__).parent / "wider_flows"))
from conftest import run_script

FLOW = Path(__file__).parent / "wider_flows" / "config_flow.py"


def _record(root: Path, run: aflow.Run) -> RunRecord:
    return RunRecord.unpack((root / run_record_key("ConfigFlow", run.id)).read_bytes())


def test_defaults_feed_decorators_parameters_and_steps(
    store_root: Path, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    from config_flow import ConfigFlow

    monkeypatch.chdir(tmp_path)  # no extra.kv here: that config is None
    run = anyio.run(lambda: aflow.run_flow(ConfigFlow))
    assert run.successful, run.error
    seen = run["start"].task.data.seen
    assert seen == {
        "lr": 0.1, "lr_param": 0.1, "mode": "default", "cpu": 2, "extra": None, "plain": ["a", "b"],
    }  # fmt: skip
    assert "read-only" in run["start"].task.data.read_only
    steps = _record(store_root, run).graph["steps"]
    assert steps["start"]["decorators"]["resources"]["cpu"] == 2
    assert steps["start"]["decorators"]["retry"]["times"] == 1  # config_expr("config.cpu - 1")
    assert steps["start"]["decorators"]["environment"]["vars"] == {"MODE": "default"}
    assert isinstance(run.data.config, ConfigValue) and run.data.config.env.MODE == "default"


def test_config_files_and_values_from_the_command_line(store_root: Path, tmp_path: Path) -> None:
    (tmp_path / "cfg.json").write_text(json.dumps({"lr": 0.5, "cpu": 3, "env": {"MODE": "file"}}))
    (tmp_path / "extra.kv").write_text("a=1\nb=2\n")
    done = run_script(
        FLOW, "--config", "config", str(tmp_path / "cfg.json"), "run",
        "--config-value", "extra", "x=y", "--lr", "0.7",
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    run = aflow.Flow("ConfigFlow").latest_run
    seen = run["start"].task.data.seen
    assert (seen["lr"], seen["lr_param"], seen["mode"], seen["cpu"]) == (0.5, 0.7, "file", 3)
    assert seen["extra"] == {"x": "y"}  # parsed by the flow's own parser
    assert _record(store_root, run).graph["steps"]["start"]["decorators"]["resources"]["cpu"] == 3


def test_default_file_is_read_when_present(store_root: Path, tmp_path: Path, monkeypatch) -> None:
    from config_flow import ConfigFlow

    (tmp_path / "extra.kv").write_text("k=v\n")
    monkeypatch.chdir(tmp_path)
    run = anyio.run(
        lambda: aflow.run_flow(ConfigFlow, config_values={"config": '{"lr": 1, "cpu": 1, "env": {}}'})
    )
    assert run.successful, run.error
    assert run["start"].task.data.seen["extra"] == {"k": "v"}
    assert run["start"].task.data.seen["lr_param"] == 1


def test_resume_keeps_the_origin_configs(store_root: Path, tmp_path: Path, monkeypatch) -> None:
    from config_flow import ConfigFlow

    monkeypatch.chdir(tmp_path)
    first = anyio.run(
        lambda: aflow.run_flow(ConfigFlow, config_values={"config": {"lr": 9, "cpu": 4, "env": {}}})
    )
    resumed = anyio.run(lambda: aflow.resume_flow(ConfigFlow, first.id, "start"))
    assert resumed.successful, resumed.error
    assert resumed["start"].task.data.seen["lr"] == 9
    steps = _record(store_root, resumed).graph["steps"]
    assert steps["start"]["decorators"]["resources"]["cpu"] == 4


def test_mistakes_say_what_to_fix(tmp_path: Path) -> None:
    from config_flow import ConfigFlow

    with pytest.raises(ParameterError, match="has no config 'nope'"):
        read_configs(ConfigFlow, values={"nope": "{}"})
    with pytest.raises(ParameterError, match="cannot parse --config-value"):
        read_configs(ConfigFlow, values={"config": "{not json"})
    with pytest.raises(AflowException, match=r"default= .* or default_value=, not both"):
        Config("c", default="a.json", default_value={})

    class Needs(aflow.FlowSpec):
        c = Config("c", required=True)

    with pytest.raises(ParameterError, match="config 'c' is required: pass --config c FILE"):
        read_configs(Needs)
    value = ConfigValue({"a": {"b": [1, {"c": 2}]}})
    assert value.a.b[1].c == 2 and value.to_dict() == {"a": {"b": [1, {"c": 2}]}}
    with pytest.raises(AttributeError, match="no key 'z'"):
        value.z  # noqa: B018


def test_a_parser_is_given_text_also_for_bytes(tmp_path: Path) -> None:
    """`parser=` takes the config's text: bytes given as the value or default are decoded (UTF-8)
    first, as a file's content is, rather than handed over as bytes."""

    def key_values(text: str) -> dict[str, str]:
        return dict(line.split("=", 1) for line in text.splitlines())

    class KeyValues(aflow.FlowSpec):
        c = Config("c", default_value=b"a=1\nb=\xc3\xa9", parser=key_values)

    assert read_configs(KeyValues)["c"] == {"a": "1", "b": "\u00e9"}
    assert read_configs(KeyValues, values={"c": b"x=y"})["c"] == {"x": "y"}


def test_concurrent_runs_keep_their_own_configs(store_root: Path, tmp_path: Path, monkeypatch) -> None:
    from config_flow import ConfigFlow

    monkeypatch.chdir(tmp_path)
    runs: dict[int, aflow.Run] = {}

    async def one(cpu: int) -> None:
        value = {"lr": cpu / 10, "cpu": cpu, "env": {"MODE": str(cpu)}}
        runs[cpu] = await aflow.run_flow(ConfigFlow, config_values={"config": value})

    async def both() -> None:
        async with anyio.create_task_group() as tg:
            tg.start_soon(one, 3)
            tg.start_soon(one, 5)

    anyio.run(both)
    for cpu, run in runs.items():
        seen = run["start"].task.data.seen
        assert (seen["cpu"], seen["mode"], seen["lr_param"]) == (cpu, str(cpu), cpu / 10)
        steps = _record(store_root, run).graph["steps"]
        assert steps["start"]["decorators"]["resources"]["cpu"] == cpu
