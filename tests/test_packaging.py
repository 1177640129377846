"""The code package: what goes in, what is kept out (and said), and the same bytes every time."""

from __future__ import annotations

import os
import sys
import tarfile
from pathlib import Path

import pytest
from conftest import run_cli

from aflow.engine.flow_loader import load_flow_file
from aflow.engine.packaging import build_package, unpack

FLOW = """
from aflow import FlowSpec, step
import helper
import faraway


class PkFlow(FlowSpec):
    @step
    def start(self):
        self.next(self.end)

    @step
    def end(self):
        pass
"""


@pytest.fixture
def project(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    root = tmp_path / "project"
    (root / "sub").mkdir(parents=True)
    (root / "flow.py").write_text(FLOW)
    (root / "helper.py").write_text("X = 1\n")
    (root / "sub" / "data.csv").write_text("a,b\n")
    (root / ".env").write_text("TOKEN=secret\n")
    (root / "id_ed25519").write_text("key\n")
    (root / ".git").mkdir()
    (root / ".git" / "config").write_text("[core]\n")
    (root / "env" / "lib").mkdir(parents=True)
    (root / "env" / "pyvenv.cfg").write_text("home = /usr\n")
    (root / "env" / "lib" / "site.py").write_text("")
    (root / "big.bin").write_bytes(b"\0" * (2 << 20))
    elsewhere = tmp_path / "lib"
    elsewhere.mkdir()
    (elsewhere / "faraway.py").write_text("Y = 2\n")
    monkeypatch.syspath_prepend(str(elsewhere))
    monkeypatch.setenv("AFLOW_PACKAGE_MAX_FILE_SIZE", str(1 << 20))
    for name in ("helper", "faraway"):
        sys.modules.pop(name, None)
    load_flow_file(str(root / "flow.py"))
    return root


def test_what_goes_in_and_what_stays_out(project: Path) -> None:
    built = build_package(project / "flow.py")
    own = [f for f in built.files if not f.startswith("aflow/")]
    assert own == ["faraway.py", "flow.py", "helper.py", "sub/data.csv"]
    assert "aflow/engine/task_runtime.py" in built.files
    skipped = dict(built.skipped)
    assert skipped[".env"].startswith("looks like a secret")
    assert skipped["id_ed25519"].startswith("looks like a secret")
    assert "over the 1 MiB limit" in skipped["big.bin"]
    assert not any(f.startswith((".git", "env/")) for f in built.files)


def test_same_content_same_bytes(project: Path) -> None:
    first = build_package(project / "flow.py")
    os.utime(project / "helper.py", (1, 1))  # a new mtime is not new content
    assert build_package(project / "flow.py").digest == first.digest
    (project / "helper.py").write_text("X = 2\n")
    assert build_package(project / "flow.py").digest != first.digest


def test_includes_excludes_and_unpack(project: Path, tmp_path: Path) -> None:
    built = build_package(project / "flow.py", include=["big.bin"], exclude=["sub/*"])
    assert "big.bin" in built.files and "sub/data.csv" not in built.files
    assert ("sub/data.csv", "excluded (sub/*)") in built.skipped
    target = tmp_path / "unpacked"
    unpack(built.data, target)
    assert (target / "helper.py").read_text() == "X = 1\n"
    assert (target / "aflow" / "__init__.py").exists()
    with tarfile.open(fileobj=__import__("io").BytesIO(built.data)) as tar:
        assert all(m.mtime == 0 and m.uid == 0 for m in tar.getmembers())


def test_package_command(project: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PYTHONPATH", str(project.parent / "lib"))
    result = run_cli("package", str(project / "flow.py"))
    assert result.returncode == 0, result.stderr
    assert "(4 of the flow's, the rest aflow)" in result.stdout and "  faraway.py" in result.stdout
    assert "skipped .env: looks like a secret" in result.stdout
