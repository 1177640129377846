"""The same flows on every datastore: local, S3 (moto), Azure (Azurite) and GCS (gcp-storage-emulator),
read back from another process through the client, logs included. The test suite starts each server."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import EXAMPLES, FLOWS, run_cli

STORES = ["local", "s3", "azure", "gs"]


@pytest.fixture(params=STORES)
def datastore(request: pytest.FixtureRequest, tmp_path: Path) -> tuple[str, str]:
    if request.param == "local":
        return "local", str(tmp_path / "store")
    fixture = {"s3": "s3_datastore", "azure": "azure_datastore", "gs": "gcs_datastore"}
    return request.getfixturevalue(fixture[request.param])


def read_back(datastore: tuple[str, str], flow: str, code: str) -> str:
    """Run `code` in a fresh interpreter with `run` bound to the flow's latest run."""
    name, root = datastore
    script = (
        "import aflow\n"
        "aflow.namespace(None)\n"
        f"run = aflow.Flow({flow!r}, datastore={name!r}, datastore_root={root!r}).latest_run\n" + code
    )
    done = subprocess.run(
        [sys.executable, "-c", script],
        capture_output=True,
        text=True,
        env=os.environ.copy(),
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    return done.stdout


def test_linear_flow(datastore: tuple[str, str]) -> None:
    name, root = datastore
    result = run_cli("run", str(EXAMPLES / "linear.py"), "--datastore", name, "--datastore-root", root)
    assert result.returncode == 0, result.stderr
    out = read_back(datastore, "LinearFlow", "print(run.successful, run.data.sentence)\n")
    assert out.strip() == "True hello from aflow"


def test_foreach_join_numpy_and_logs(datastore: tuple[str, str]) -> None:
    name, root = datastore
    result = run_cli(
        "run",
        str(FLOWS / "nested.py"),
        "--datastore",
        name,
        "--datastore-root",
        root,
        "--verbose",
        "--max-workers",
        "6",
    )
    assert result.returncode == 0, result.stderr
    assert "run:a1,a2,b1,b2,c1,c2" in result.stdout
    out = read_back(
        datastore,
        "NestedFlow",
        "print(run.successful, run.data.total_weight, run.data.summary)\n"
        "print(len(list(run['per_number'])))\n"
        "print(run['end'].task.stdout.strip())\n",
    )
    assert out.splitlines() == ["True 6000.0 run:a1,a2,b1,b2,c1,c2", "6", "run:a1,a2,b1,b2,c1,c2"]


def test_numpy_artifact_and_resume(datastore: tuple[str, str]) -> None:
    name, root = datastore
    result = run_cli(
        "run", str(EXAMPLES / "numpy_transfer.py"), "--datastore", name, "--datastore-root", root
    )
    assert result.returncode == 0, result.stderr
    assert "sum = 499999500000" in result.stdout
    resumed = run_cli(
        "resume",
        str(EXAMPLES / "numpy_transfer.py"),
        "total",
        "--datastore",
        name,
        "--datastore-root",
        root,
    )
    assert resumed.returncode == 0, resumed.stderr
    out = read_back(
        datastore,
        "NumpyTransferFlow",
        "print(run.origin_run_id is not None, run['start'].task.data.array.shape)\n",
    )
    assert out.strip() == "True (1000000,)"


def test_inspection_commands(datastore: tuple[str, str]) -> None:
    name, root = datastore
    assert (
        run_cli(
            "run", str(EXAMPLES / "branch.py"), "--datastore", name, "--datastore-root", root
        ).returncode
        == 0
    )
    listed = run_cli("list", "runs", "BranchFlow", "--datastore", name, "--datastore-root", root)
    assert listed.returncode == 0, listed.stderr
    assert "done" in listed.stdout
    logs = run_cli("logs", "BranchFlow", "latest/end", "--datastore", name, "--datastore-root", root)
    assert logs.returncode == 0, logs.stderr
    assert "results={'double': 20, 'square': 100}" in logs.stdout
