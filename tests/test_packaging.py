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
    built = build_package(project / "flow.py", survey=True)
    own = [f for f in built.files if not f.startswith("aflow/")]
    # Safe by construction: the flow and what it imports; a data file beside it is left out
    # (and said) until included.
    assert own == ["faraway.py", "flow.py", "helper.py"]
    assert built.why["helper.py"] == "imported" and built.why["flow.py"] == "the flow file"
    assert "aflow/engine/task_runtime.py" in built.files
    assert "sub/data.csv" in built.left_out and "big.bin" in built.left_out
    skipped = dict(built.skipped)
    assert skipped[".env"].startswith("looks like a credential file")
    assert skipped["id_ed25519"].startswith("looks like a credential file")
    assert not any(f.startswith((".git", "env/")) for f in built.left_out + built.files)
    included = build_package(project / "flow.py", include=["*.csv", "*.bin"])
    assert "sub/data.csv" in included.files and included.why["sub/data.csv"] == "included (*.csv)"
    assert "over the 1 MiB limit" in dict(included.skipped)["big.bin"]


# Files that hold credentials, as a user's project folder may have them (issue 12's list and more).
CREDENTIAL_FILES = (
    ".kube/config", ".docker/config.json", ".config/gcloud/credentials.db",
    ".config/gcloud/access_tokens.db", ".config/gcloud/application_default_credentials.json",
    ".azure/msal_token_cache.json", ".azure/accessTokens.json", ".pypirc", ".s3cfg", ".boto",
    ".envrc", ".vault-token", "terraform.tfstate", "infra/terraform.tfstate.backup",
    "gcp-sa-key.json", ".streamlit/secrets.toml", ".npmrc", ".bash_history", ".zsh_history",
    ".python_history", ".aws/credentials", ".aws/config", ".ssh/id_rsa", ".netrc",
    ".git-credentials", "prod.env", ".env.local", "conf/server.pem", "kubeconfig",
    "dev.kubeconfig", ".terraform/terraform.tfstate", "secrets.tfvars", ".pgpass",
)  # fmt: skip


@pytest.mark.parametrize("includes", [[], ["*"], ["*", ".*"]], ids=["default", "star", "dotstar"])
def test_credential_files_never_packaged(project: Path, includes: list[str]) -> None:
    for name in CREDENTIAL_FILES:
        (project / name).parent.mkdir(parents=True, exist_ok=True)
        (project / name).write_text("aws_secret_access_key = AKIASECRET\n")
    built = build_package(project / "flow.py", include=includes, survey=True)
    with tarfile.open(fileobj=__import__("io").BytesIO(built.data)) as tar:
        names = set(tar.getnames())
        assert not any(b"AKIASECRET" in tar.extractfile(m).read() for m in tar.getmembers())
    skipped = dict(built.skipped)
    for name in CREDENTIAL_FILES:
        assert name not in names
        assert skipped[name].startswith("looks like a credential file"), name
    assert "flow.py" in names and "helper.py" in names


def test_imports_followed_relative_and_class_includes(tmp_path: Path) -> None:
    root = tmp_path / "proj"
    (root / "pkg" / "inner").mkdir(parents=True)
    (root / "data").mkdir()
    (root / "flow.py").write_text(
        "from aflow import FlowSpec, step\nfrom pkg.inner import thing\n\n\n"
        "class RelFlow(FlowSpec):\n    package_include = ['data/*.txt']\n\n"
        "    @step\n    def start(self):\n        self.next(self.end)\n\n"
        "    @step\n    def end(self):\n        pass\n"
    )
    (root / "pkg" / "__init__.py").write_text("")
    (root / "pkg" / "inner" / "__init__.py").write_text("from .thing import VALUE\n")
    (root / "pkg" / "inner" / "thing.py").write_text("from ..util import helper\nVALUE = 1\n")
    (root / "pkg" / "util.py").write_text("def helper(): ...\n")
    (root / "pkg" / "unused.py").write_text("")
    (root / "data" / "a.txt").write_text("a")
    (root / "data" / "b.csv").write_text("b")
    sys.path.insert(0, str(root))
    try:
        load_flow_file(str(root / "flow.py"))
        built = build_package(root / "flow.py", survey=True)
    finally:
        sys.path.remove(str(root))
        for name in [m for m in sys.modules if m == "pkg" or m.startswith("pkg.")]:
            del sys.modules[name]
    own = sorted(f for f in built.files if not f.startswith("aflow/"))
    assert own == [
        "data/a.txt", "flow.py", "pkg/__init__.py", "pkg/inner/__init__.py",
        "pkg/inner/thing.py", "pkg/util.py",
    ]  # fmt: skip
    assert sorted(built.left_out) == ["data/b.csv", "pkg/unused.py"]


def test_total_size_warning(project: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AFLOW_PACKAGE_WARN_SIZE", str(1 << 10))
    (project / "sub" / "data.csv").write_text("x" * 4096)
    assert build_package(project / "flow.py").warnings == []
    built = build_package(project / "flow.py", include=["sub/*"])
    assert len(built.warnings) == 1 and "AFLOW_PACKAGE_WARN_SIZE" in built.warnings[0]


def test_same_content_same_bytes(project: Path) -> None:
    first = build_package(project / "flow.py")
    os.utime(project / "helper.py", (1, 1))  # a new mtime is not new content
    assert build_package(project / "flow.py").digest == first.digest
    (project / "helper.py").write_text("X = 2\n")
    assert build_package(project / "flow.py").digest != first.digest


def test_includes_excludes_and_unpack(project: Path, tmp_path: Path) -> None:
    built = build_package(project / "flow.py", include=["sub/*"], exclude=["sub/*"])
    assert "sub/data.csv" not in built.files
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
    assert "(3 of the flow's, the rest aflow)" in result.stdout
    assert "  faraway.py  (imported)" in result.stdout
    assert "left out (neither imported nor included" in result.stdout
    assert "  sub/data.csv" in result.stdout
    assert "skipped .env: looks like a credential file" in result.stdout
    monkeypatch.setenv("AFLOW_PACKAGE_INCLUDE", "sub/*")
    result = run_cli("package", str(project / "flow.py"))
    assert "  sub/data.csv  (included (sub/*))" in result.stdout, result.stdout
