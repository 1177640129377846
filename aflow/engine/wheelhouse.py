"""Wheels of aflow's runtime requirements for remote containers, kept once in the datastore.

A container whose image lacks aflow's requirements used to pip-install them from PyPI on every
start (about 14 s and 52 MB each, and impossible in a subnet without internet). Instead the
scheduler gathers wheels for the containers' platform and Python once (`pip download
--only-binary=:all: --platform ... --python-version X.Y`), keeps them in a local cache so repeated
runs ask no index at all, and stores them as one tar in the datastore under its content hash, as
the code package is stored. The bootstrap (engine/bootstrap.py) fetches that tar only when the
image lacks something, and installs with `pip install --no-index --find-links`.

When the wheels cannot be gathered (an offline laptop, no pip), `WheelhouseUnavailable` says why;
the caller warns and the containers install from the index as before.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
import tarfile
import tempfile
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path

import anyio

from aflow.stores.artifacts import blob_key
from aflow.stores.base import ObjectStore

# Bump when the layout of a cached wheelhouse changes.
_FORMAT = 1
# python:3.12, python:3.12-slim, ghcr.io/x/python:3.11.4-bookworm: the image's Python, if its tag says.
_PYTHON_TAG = re.compile(r"(?:^|/)python:(\d+)\.(\d+)")


class WheelhouseUnavailable(Exception):
    """The wheels could not be gathered; the message says why."""


@dataclass(frozen=True)
class WheelhouseSettings:
    """AFLOW_WHEELHOUSE ("0" turns it off), AFLOW_WHEELHOUSE_PLATFORM (pip platform tags,
    comma-separated), AFLOW_WHEELHOUSE_PYTHON (X.Y; default: the image tag's python:X.Y, else this
    interpreter's), AFLOW_WHEELHOUSE_CACHE (the local cache folder)."""

    enabled: bool = True
    platforms: tuple[str, ...] = ("manylinux2014_x86_64", "manylinux_2_28_x86_64")
    python: str | None = None
    cache: Path | None = None

    @classmethod
    def from_env(cls) -> WheelhouseSettings:
        raw = os.environ.get("AFLOW_WHEELHOUSE", "").strip().lower()
        platforms = os.environ.get("AFLOW_WHEELHOUSE_PLATFORM", "")
        cache = os.environ.get("AFLOW_WHEELHOUSE_CACHE")
        if not cache:
            base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
            cache = os.path.join(base, "aflow", "wheelhouse")
        return cls(
            enabled=raw not in ("0", "off", "false", "no"),
            platforms=tuple(p.strip() for p in platforms.split(",") if p.strip()) or cls.platforms,
            python=os.environ.get("AFLOW_WHEELHOUSE_PYTHON") or None,
            cache=Path(cache),
        )

    def python_for(self, image: str) -> str:
        """The Python version the wheels are for: the setting, the image tag's, else ours."""
        if self.python:
            return self.python
        found = _PYTHON_TAG.search(image)
        if found:
            return f"{found.group(1)}.{found.group(2)}"
        return f"{sys.version_info.major}.{sys.version_info.minor}"


@dataclass(frozen=True)
class Wheelhouse:
    """A tar of wheels in the local cache, and what it is for."""

    path: Path
    digest: str  # SHA-256 of the tar
    python: str
    platforms: tuple[str, ...]
    files: tuple[str, ...]

    @property
    def size(self) -> int:
        return self.path.stat().st_size


def gather(requirements: list[str], python: str, settings: WheelhouseSettings) -> Wheelhouse:
    """The wheelhouse for these requirements, from the cache when it has been made before (no
    index asked), else downloaded (wheels already in the cache are reused). Blocking: run it in a
    thread."""
    assert settings.cache is not None
    wanted = {
        "format": _FORMAT,
        "requirements": sorted(requirements),
        "python": python,
        "platforms": list(settings.platforms),
    }
    name = hashlib.sha256(json.dumps(wanted, sort_keys=True).encode()).hexdigest()[:32]
    house = settings.cache / "houses" / name
    made = _read_made(house)
    if made is not None:
        return made
    wheels = settings.cache / "wheels"
    try:
        wheels.mkdir(parents=True, exist_ok=True)
        house.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise WheelhouseUnavailable(f"cannot write the wheel cache {settings.cache}: {e}") from e
    with tempfile.TemporaryDirectory(dir=house) as scratch:
        _download(requirements, python, settings.platforms, wheels, Path(scratch))
        files = sorted(p.name for p in Path(scratch).glob("*.whl"))
        for file in files:
            if not (wheels / file).exists():
                shutil.copy2(Path(scratch) / file, wheels / file)
        tar_path = house / "wheelhouse.tar"
        partial = house / "wheelhouse.tar.partial"
        with tarfile.open(partial, "w", format=tarfile.PAX_FORMAT) as tar:
            for file in files:  # the same bytes for the same wheels: a stable content hash
                info = tar.gettarinfo(str(Path(scratch) / file), arcname=file)
                info.mtime, info.uid, info.gid, info.uname, info.gname = 0, 0, 0, "", ""
                with open(Path(scratch) / file, "rb") as f:
                    tar.addfile(info, f)
    digest = _sha256(partial)
    made_doc = {"digest": digest, "python": python, "platforms": list(settings.platforms)}
    made_doc["files"] = files
    os.replace(partial, tar_path)
    (house / "made.json").write_text(json.dumps(made_doc))
    return Wheelhouse(tar_path, digest, python, settings.platforms, tuple(files))


def _read_made(house: Path) -> Wheelhouse | None:
    try:
        doc = json.loads((house / "made.json").read_text())
        tar_path = house / "wheelhouse.tar"
        if not tar_path.is_file():
            return None
        return Wheelhouse(
            tar_path, doc["digest"], doc["python"], tuple(doc["platforms"]), tuple(doc["files"])
        )
    except (OSError, ValueError, KeyError):
        return None


def _download(
    requirements: list[str], python: str, platforms: tuple[str, ...], cache: Path, into: Path
) -> None:
    """pip download the wheels into `into`: from the cache alone first, then from the index."""
    command = [
        sys.executable, "-m", "pip", "download", "--disable-pip-version-check", "-q",
        "--only-binary=:all:", "--implementation", "cp", "--python-version", python,
        *(f"--platform={p}" for p in platforms), "--find-links", str(cache), "-d", str(into),
    ]  # fmt: skip
    offline = subprocess.run([*command, "--no-index", *requirements], capture_output=True, text=True)
    if offline.returncode == 0:
        return
    online = subprocess.run([*command, *requirements], capture_output=True, text=True)
    if online.returncode != 0:
        said = (online.stderr or online.stdout).strip().splitlines()
        raise WheelhouseUnavailable(
            f"pip download for Python {python} on {', '.join(platforms)} failed: "
            + (" ".join(said[-3:]) if said else f"exit code {online.returncode}")
        )


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


class WheelhouseMaker:
    """One run's wheelhouses: gathered once per Python version, stored once, a failure warned of
    once. `container_settings()` gives what the bootstrap reads (AFLOW_WHEELS_*)."""

    def __init__(
        self,
        store: ObjectStore,
        flow_name: str,
        presign: Callable[[str], Awaitable[str | None]],
        settings: WheelhouseSettings | None = None,
    ):
        self.store, self.flow_name, self.presign = store, flow_name, presign
        self.settings = settings or WheelhouseSettings.from_env()
        self._made: dict[str, dict[str, str]] = {}
        self._lock = anyio.Lock()

    async def container_settings(self, requirements: str, image: str) -> dict[str, str]:
        """AFLOW_WHEELS_* for a container of `image` needing `requirements` (the `module=spec;...`
        of AFLOW_REQUIREMENTS); AFLOW_WHEELS_NOTE alone when there is no wheelhouse."""
        if not self.settings.enabled:
            return {"AFLOW_WHEELS_NOTE": "AFLOW_WHEELHOUSE is off"}
        python = self.settings.python_for(image)
        async with self._lock:
            if python not in self._made:
                self._made[python] = await self._make(requirements, python)
            made = dict(self._made[python])
        if "AFLOW_WHEELS_KEY" in made:
            # Signed afresh for each job, as the code package's: a URL dies with the temporary
            # credentials that signed it.
            url = await self.presign(made["AFLOW_WHEELS_KEY"])
            if url:
                made["AFLOW_WHEELS_URL"] = url
        return made

    async def _make(self, requirements: str, python: str) -> dict[str, str]:
        specs = [pair.split("=", 1)[1] for pair in requirements.split(";") if "=" in pair]
        try:
            house = await anyio.to_thread.run_sync(gather, specs, python, self.settings)
        except (WheelhouseUnavailable, OSError) as e:
            why = f"no wheelhouse for the containers: {e}"
            print(f"[aflow] warning: {why}; containers install aflow's requirements from the index "
                  "(PyPI) when their image lacks them", file=sys.stderr)  # fmt: skip
            return {"AFLOW_WHEELS_NOTE": why[:300]}
        key = blob_key(self.flow_name, house.digest)
        if not await self.store.exists(key):
            data = await anyio.to_thread.run_sync(house.path.read_bytes)
            await self.store.put(key, [data])
        return {
            "AFLOW_WHEELS_KEY": key,
            "AFLOW_WHEELS_SHA256": house.digest,
            "AFLOW_WHEELS_PYTHON": python,
        }
