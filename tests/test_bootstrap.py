"""What a remote container does before aflow's runtime runs (engine/bootstrap.py), in the images
users really have: a bare Python with only its standard library and pip and no way to PyPI (the
run's wheelhouse serves), ... Containers run on the AWS Batch emulator, data through moto's S3."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest
from test_batch_backend import on_batch, run  # noqa: F401  (the fixture, used by name)


@pytest.fixture(scope="module")
def bare_python() -> Iterator[Path]:
    """A fresh `python -m venv` of the scheduler's base Python: the standard library and pip,
    none of aflow's requirements. Readable by every user (uid 65534 too)."""
    folder = Path(tempfile.mkdtemp(prefix="aflow-bare-"))
    folder.chmod(0o755)
    subprocess.run([sys.executable, "-m", "venv", str(folder / "venv")], check=True)
    python = folder / "venv" / "bin" / "python3"
    lacks = subprocess.run([python, "-c", "import anyio"], capture_output=True)
    assert lacks.returncode != 0, "the bare Python must not see the scheduler's packages"
    try:
        yield python
    finally:
        subprocess.run(["rm", "-rf", str(folder)], check=False)


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def bare_image(fake, python: Path) -> None:
    """The emulator's containers run `python3` from the bare venv, with no index reachable."""
    fake.base_env["PATH"] = os.pathsep.join([str(python.parent), "/usr/bin", "/bin"])
    fake.base_env["PIP_INDEX_URL"] = f"http://127.0.0.1:{closed_port()}/simple"  # PyPI unreachable
    fake.base_env["PIP_NO_CACHE_DIR"] = "1"


def test_a_bare_image_without_pypi_runs_the_flow_from_the_wheelhouse(on_batch, bare_python):  # noqa: F811
    bare_image(on_batch, bare_python)
    result = run("remote_list")
    assert result.successful, result
    assert result["end"].task.data.result == 12
    out = result["double"].task.stdout
    assert "from the wheelhouse" in out, out
    assert "from the index" not in out


def test_without_a_wheelhouse_a_bare_image_without_pypi_fails_and_says_why(
    on_batch,  # noqa: F811
    bare_python,
    monkeypatch,
):
    monkeypatch.setenv("AFLOW_WHEELHOUSE", "0")
    bare_image(on_batch, bare_python)
    result = run("remote_list")
    assert not result.successful
    (job,) = on_batch.jobs.values()
    lines = "\n".join(on_batch.log_lines(job.job_id))
    assert "no wheelhouse (AFLOW_WHEELHOUSE is off)" in lines, lines
    assert "installing" in lines and "from the index" in lines
