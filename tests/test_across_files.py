"""Flows across files: steps from a base class in another module, @step above a functools.wraps
decorator, and the local store found in a parent folder."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

import aflow
from aflow.stores.local import default_local_root

ACROSS = Path(__file__).parent / "wider_flows" / "across"


@pytest.mark.parametrize("how", ["script", "cli"])
def test_steps_from_a_base_class_in_another_module(tmp_path: Path, how: str) -> None:
    root = tmp_path / "store"
    env = {**os.environ, "AFLOW_DATASTORE_ROOT": str(root)}
    flow = str(ACROSS / "child_flow.py")
    args = [flow, "run"] if how == "script" else ["-m", "aflow", "run", flow]
    done = subprocess.run([sys.executable, *args], capture_output=True, text=True, env=env, timeout=120)
    assert done.returncode == 0, done.stderr
    run = aflow.Flow("ChildFlow", datastore_root=str(root)).latest_run
    assert run["end"].task.data.y == 2
    assert run["start"].task.data.logged == "start"  # the functools.wraps decorator ran


def test_local_store_in_a_parent_folder(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("AFLOW_DATASTORE_ROOT", raising=False)
    (tmp_path / ".aflow").mkdir()
    notebooks = tmp_path / "notebooks" / "deeper"
    notebooks.mkdir(parents=True)
    monkeypatch.chdir(notebooks)
    assert default_local_root() == str(tmp_path / ".aflow")
    elsewhere = tmp_path.parent / f"{tmp_path.name}-none"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    if not any((p / ".aflow").is_dir() for p in elsewhere.parents):
        assert default_local_root() == str(elsewhere / ".aflow")
