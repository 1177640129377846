"""Parameters as Metaflow has them: `multiple=True`, `--flag True/False`, function defaults, and an
error for a keyword aflow does not implement; options written before the command."""

from __future__ import annotations

import sys
from pathlib import Path

import anyio
import pytest

import aflow
from aflow.exception import ParameterError
from aflow.stores.records import RunRecord, run_record_key

sys.path.insert(0, str(Path(__file__).parent / "wider_flows"))
from conftest import run_script

FLOWS = Path(__file__).parent / "wider_flows"


def _seen() -> tuple:
    return aflow.Flow("ParamsFlow").latest_run["start"].task.data.seen


def test_repeated_options_bool_values_and_function_defaults(store_root: Path) -> None:
    done = run_script(
        FLOWS / "params_flow.py", "run", "--label", "a", "--label=b", "--size", "7", "--flag", "False"
    )
    assert done.returncode == 0, done.stderr
    assert _seen() == (["a", "b"], [7], False, "ParamsFlow:who", 42)
    done = run_script(FLOWS / "params_flow.py", "run", "--no-flag")
    assert done.returncode == 0, done.stderr
    assert _seen() == ([], [1, 2], False, "ParamsFlow:who", 42)
    done = run_script(FLOWS / "params_flow.py", "run", "--flag", "--who", "me")
    assert done.returncode == 0, done.stderr
    assert _seen()[2:4] == (True, "me")


def test_run_flow_takes_lists_for_multiple(store_root: Path) -> None:
    from params_flow import ParamsFlow

    run = anyio.run(lambda: aflow.run_flow(ParamsFlow, params={"size": ["3", 4], "label": "x"}))
    assert run["start"].task.data.seen[:2] == (["x"], [3, 4])


def test_unimplemented_keywords_are_refused() -> None:
    with pytest.raises(ParameterError, match="aflow does not implement bogus="):
        aflow.Parameter("p", default=1, bogus=True)


def test_options_before_the_command(store_root: Path) -> None:
    done = run_script(
        FLOWS / "params_flow.py", "--metadata=local", "--with", "retry", "--datastore=local", "run",
        "--label", "z",
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert "--metadata is ignored" in done.stderr
    run = aflow.Flow("ParamsFlow").latest_run
    assert run["start"].task.data.seen[0] == ["z"]
    record = RunRecord.unpack((store_root / run_record_key("ParamsFlow", run.id)).read_bytes())
    assert "retry" in record.graph["steps"]["start"]["decorators"]  # --with, given before `run`


def test_a_parameter_named_config_is_not_a_config(store_root: Path, tmp_path: Path) -> None:
    flow = tmp_path / "named_config.py"
    flow.write_text(
        "from aflow import Config, FlowSpec, JSONType, Parameter, step\n\n\n"
        "class NamedConfigFlow(FlowSpec):\n"
        "    config = Parameter('config', type=JSONType, default='{}')\n"
        "    settings = Config('settings', default_value={'k': 0})\n\n"
        "    @step\n"
        "    def start(self):\n"
        "        self.seen = (self.config, self.settings['k'])\n"
        "        self.next(self.end)\n\n"
        "    @step\n"
        "    def end(self):\n"
        "        pass\n\n\n"
        "if __name__ == '__main__':\n"
        "    NamedConfigFlow()\n"
    )
    done = run_script(flow, "--config-value", "settings", '{"k": 5}', "run", "--config", '{"a": 1}')
    assert done.returncode == 0, done.stderr
    assert aflow.Flow("NamedConfigFlow").latest_run["start"].task.data.seen == ({"a": 1}, 5)
