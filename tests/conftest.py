"""Shared fixtures: a fresh datastore per test, and helpers to run flows through the real CLI."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

# Servers the tests start on 127.0.0.1 (see tests/servers/).
pytest_plugins = [
    "servers.moto_s3",
    "servers.throttling_proxy",
    "servers.azurite",
    "servers.gcs_emulator",
    "fakes.batch_server",
    "fakes.k8s_server",
    "k8s_support",  # the `k8s` fixture: the emulator wired to a moto S3 datastore
]

def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption(
        "--chaos-rounds",
        type=int,
        default=1,
        help="tests/test_chaos.py: rounds of random damage and kills (1 in CI; more for a soak)",
    )


ROOT = Path(__file__).resolve().parent.parent
FLOWS = Path(__file__).resolve().parent / "flows"
EXAMPLES = ROOT / "examples"


@pytest.fixture
def store_root(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    root = tmp_path / "store"
    monkeypatch.setenv("AFLOW_DATASTORE_ROOT", str(root))
    return root


def run_cli(*args: str, cwd: Path | None = None, timeout: float = 300) -> subprocess.CompletedProcess:
    """`aflow ARGS` in a subprocess (the environment, with AFLOW_DATASTORE_ROOT, is inherited)."""
    return subprocess.run(
        [sys.executable, "-m", "aflow", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        cwd=cwd,
        env=os.environ.copy(),
    )


def run_script(script: Path, *args: str, timeout: float = 300) -> subprocess.CompletedProcess:
    """`python flow.py ARGS`, the Metaflow habit."""
    return subprocess.run(
        [sys.executable, str(script), *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        env=os.environ.copy(),
    )


sys.path.insert(0, str(FLOWS))


@pytest.fixture(scope="module")
def inspect_runs(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Path, str, str]]:
    """One successful and one failed InspectFlow run in a store of their own (per test module)."""
    import anyio
    from inspect_flow import InspectFlow

    import aflow

    root = tmp_path_factory.mktemp("runs") / "store"
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("AFLOW_DATASTORE_ROOT", str(root))

        async def both() -> tuple[str, str]:
            ok = await aflow.run_flow(InspectFlow)
            bad = await aflow.run_flow(InspectFlow, params={"fail": True})
            return ok.id, bad.id

        ok_id, bad_id = anyio.run(both)
        yield root, ok_id, bad_id


@pytest.fixture
def inspect_store(inspect_runs: tuple[Path, str, str], monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("AFLOW_DATASTORE_ROOT", str(inspect_runs[0]))
    return inspect_runs[0]
