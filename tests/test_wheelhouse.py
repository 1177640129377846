"""The scheduler's side of the wheelhouse (engine/wheelhouse.py): wheels gathered once into a local
cache and served from it with no index asked; a clear reason when they cannot be gathered. No
network: the index is a closed port, the wheels a small one made here."""

from __future__ import annotations

import socket
import tarfile
import zipfile
from pathlib import Path

import pytest

from aflow.engine.wheelhouse import WheelhouseSettings, WheelhouseUnavailable, gather


@pytest.fixture
def no_index(monkeypatch: pytest.MonkeyPatch) -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    monkeypatch.setenv("PIP_CONFIG_FILE", "/dev/null")  # this machine's own pip settings out
    monkeypatch.setenv("PIP_INDEX_URL", f"http://127.0.0.1:{port}/simple")
    monkeypatch.setenv("PIP_RETRIES", "0")
    monkeypatch.setenv("PIP_TIMEOUT", "2")


def make_wheel(folder: Path, name: str = "tinypkg", version: str = "1.0") -> Path:
    path = folder / f"{name}-{version}-py3-none-any.whl"
    info = f"{name}-{version}.dist-info"
    with zipfile.ZipFile(path, "w") as whl:
        whl.writestr(f"{name}/__init__.py", "VALUE = 1\n")
        whl.writestr(f"{info}/METADATA", f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n")
        whl.writestr(
            f"{info}/WHEEL",
            "Wheel-Version: 1.0\nGenerator: test\nRoot-Is-Purelib: true\nTag: py3-none-any\n",
        )
        whl.writestr(f"{info}/RECORD", "")
    return path


def test_wheels_in_the_cache_make_a_wheelhouse_without_any_index(no_index: None, tmp_path: Path) -> None:
    settings = WheelhouseSettings(cache=tmp_path / "cache")
    (tmp_path / "cache" / "wheels").mkdir(parents=True)
    make_wheel(tmp_path / "cache" / "wheels")
    house = gather(["tinypkg>=1"], "3.11", settings)
    assert house.files == ("tinypkg-1.0-py3-none-any.whl",)
    with tarfile.open(house.path) as tar:
        assert tar.getnames() == ["tinypkg-1.0-py3-none-any.whl"]
    # Made once: the next run takes it as it is (same content hash), pip not even asked.
    (tmp_path / "cache" / "wheels" / "tinypkg-1.0-py3-none-any.whl").unlink()
    again = gather(["tinypkg>=1"], "3.11", settings)
    assert (again.path, again.digest) == (house.path, house.digest)


def test_no_wheels_and_no_index_says_why(no_index: None, tmp_path: Path) -> None:
    settings = WheelhouseSettings(cache=tmp_path / "cache")
    with pytest.raises(WheelhouseUnavailable) as caught:
        gather(["tinypkg>=1"], "3.11", settings)
    message = str(caught.value)
    assert "pip download for Python 3.11 on manylinux2014_x86_64" in message, message
    assert "tinypkg" in message, message


def test_settings_from_the_environment(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("AFLOW_WHEELHOUSE", "0")
    monkeypatch.setenv("AFLOW_WHEELHOUSE_PLATFORM", "manylinux2014_aarch64")
    monkeypatch.setenv("AFLOW_WHEELHOUSE_CACHE", str(tmp_path))
    monkeypatch.delenv("AFLOW_WHEELHOUSE_PYTHON", raising=False)
    settings = WheelhouseSettings.from_env()
    assert not settings.enabled and settings.platforms == ("manylinux2014_aarch64",)
    assert settings.cache == tmp_path
    assert settings.python_for("python:3.12-slim") == "3.12"
    assert settings.python_for("ghcr.io/team/python:3.13.1-bookworm") == "3.13"
    monkeypatch.setenv("AFLOW_WHEELHOUSE_PYTHON", "3.11")
    assert WheelhouseSettings.from_env().python_for("python:3.12") == "3.11"
