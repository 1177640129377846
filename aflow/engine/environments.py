"""Step environments (`@pypi`, `@conda`): resolved once per spec, cached, the same everywhere.

An environment is keyed by a hash of its spec: its kind, its packages, its Python, the platform, and
the pinned versions of what aflow's task runtime needs inside it (for the run's datastore). The
first run that needs a key resolves it and stores the lock (the exact versions installed) in the
datastore under `_environments/<key>.lock`; from then on every task of every run with that key,
here or in a container, installs exactly that lock. Locally the environment is a virtualenv (or a
conda prefix) under AFLOW_ENV_CACHE (default ~/.cache/aflow/envs), created once and reused; a file
lock makes two runs creating the same one at once take turns, and an environment counts as made
only once its `.aflow-ready` marker exists, so a crash mid-way leaves nothing that looks usable.

Tasks of such a step run in a fresh interpreter of their environment, with aflow (not its
installing environment) on their path.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path
from typing import Any

from aflow.about import PACKAGE_DIR
from aflow.exception import AflowException
from aflow.requirements import dist_name, requirements_for

KINDS = ("pypi", "conda")
# pip's platform tags for a container of each target
REMOTE_PLATFORMS = {
    "linux-x86_64": ("manylinux_2_28_x86_64", "manylinux2014_x86_64", "linux_x86_64"),
    "linux-aarch64": ("manylinux_2_28_aarch64", "manylinux2014_aarch64", "linux_aarch64"),
}
CONDA_TOOLS = ("micromamba", "mamba", "conda")
READY = ".aflow-ready"
LOCK_NAME = "aflow-lock.txt"


class EnvironmentSetupError(AflowException):
    """A step's environment cannot be made; the message says which step and why."""


@dataclass(frozen=True)
class EnvironmentSettings:
    """Where environments are made (AFLOW_ENV_CACHE) and the platform a remote step's lock is
    resolved for (AFLOW_REMOTE_PLATFORM), read when they are needed, never at import."""

    cache: Path
    remote_platform: str = "linux-x86_64"

    @classmethod
    def from_env(cls) -> EnvironmentSettings:
        cache = os.environ.get("AFLOW_ENV_CACHE")
        return cls(
            Path(cache) if cache else Path.home() / ".cache" / "aflow" / "envs",
            os.environ.get("AFLOW_REMOTE_PLATFORM") or cls.remote_platform,
        )


@dataclass(frozen=True)
class EnvSpec:
    kind: str  # pypi | conda
    packages: tuple[tuple[str, str], ...]  # (name, version or specifier), sorted
    python: str | None
    runtime: tuple[str, ...]  # what aflow's task runtime needs, pinned: "msgpack==1.0.8"
    target: str | None = None  # a remote step's platform ("linux-x86_64"); None: this machine

    @property
    def key(self) -> str:
        where = f"{self.target}/py{self.target_python}" if self.target else platform_tag()
        text = json.dumps([self.kind, self.packages, self.python, self.runtime, where], sort_keys=True)
        return hashlib.sha256(text.encode()).hexdigest()[:16]

    @property
    def target_python(self) -> str:
        return ".".join((self.python or platform.python_version()).split(".")[:2])

    @property
    def requirements(self) -> list[str]:
        return [requirement(name, version) for name, version in self.packages]

    def describe(self) -> str:
        shown = ", ".join(self.requirements) or "no packages"
        return f"@{self.kind} {self.key} ({shown}{f'; python {self.python}' if self.python else ''})"


@dataclass(frozen=True)
class ResolvedEnv:
    key: str
    kind: str
    python: str  # the environment's interpreter, here ("" for a remote step's)
    lock_key: str  # where its lock is, in the datastore
    python_version: str  # X.Y it is for

    def as_dict(self) -> dict[str, str]:
        return {
            "key": self.key,
            "kind": self.kind,
            "python": self.python,
            "lock_key": self.lock_key,
            "python_version": self.python_version,
        }


def platform_tag() -> str:
    return f"{sys.platform}-{platform.machine()}"


def requirement(name: str, version: str) -> str:
    """pip's form: "six==1.16.0" for a bare version, "numpy>=1.26" for a specifier, "six" for ""."""
    version = str(version or "").strip()
    if not version:
        return name
    return f"{name}=={version}" if version[0].isdigit() else f"{name}{version}"


def lock_key(key: str) -> str:
    return f"_environments/{key}.lock"


def runtime_pins(requirements: str) -> tuple[str, ...]:
    """aflow's own dependencies for the datastore (`module=requirement;...`, see backends/remote)
    pinned to the versions this process runs, so the task inside reads what the scheduler wrote."""
    pins = []
    for pair in filter(None, requirements.split(";")):
        _, spec = pair.split("=", 1)
        dist = dist_name(spec)
        try:
            pins.append(f"{dist}=={metadata.version(dist)}")
        except metadata.PackageNotFoundError:
            pins.append(spec)
    return tuple(sorted(pins))


def env_spec(
    step: str,
    decorators: Mapping[str, Mapping[str, Any]],
    runtime: tuple[str, ...],
    target: str | None = None,
) -> EnvSpec | None:
    """The environment a step asks for (its own @pypi/@conda merged over the flow's *_base), or
    None. Both kinds on one step is an error. `target`: the platform of the container a remote
    step runs in, for which its lock is resolved."""
    kinds = [k for k in KINDS if k in decorators]
    if not kinds:
        return None
    if len(kinds) > 1:
        raise EnvironmentSetupError(f"step '{step}' has both @pypi and @conda: keep one")
    kind = kinds[0]
    settings = decorators[kind]
    packages: dict[str, str] = {}
    for option in ("libraries", "packages"):  # @conda's older name for its packages: libraries
        for name, version in (settings.get(option) or {}).items():
            packages[str(name)] = "" if version is None else str(version)
    python = settings.get("python")
    if kind == "conda" and target is not None:
        raise EnvironmentSetupError(
            f"step '{step}': @conda on a remote step is not built yet (its lock would have to be "
            f"solved for {target}); use @pypi, or an image that has the packages"
        )
    packed = tuple(sorted(packages.items()))
    return EnvSpec(kind, packed, str(python) if python else None, runtime, target)


def cache_root() -> Path:
    return EnvironmentSettings.from_env().cache


def aflow_path() -> str:
    """A folder holding only aflow (a link to this one), for a task's path: putting aflow's parent
    there instead would also expose whatever else is installed beside it."""
    source = PACKAGE_DIR
    folder = cache_root() / "aflow-src" / hashlib.sha256(str(source).encode()).hexdigest()[:12]
    link = folder / "aflow"
    if not link.exists():
        folder.mkdir(parents=True, exist_ok=True)
        temporary = folder / f".aflow-{os.getpid()}"
        temporary.unlink(missing_ok=True)
        temporary.symlink_to(source, target_is_directory=True)
        os.replace(temporary, link)
    return str(folder)


def find_conda() -> str:
    for tool in CONDA_TOOLS:
        found = shutil.which(tool)
        if found:
            return found
    raise EnvironmentSetupError(
        "@conda needs micromamba, mamba or conda on PATH and none is there: install micromamba "
        "(https://mamba.readthedocs.io/en/latest/installation/micromamba-installation.html), or use "
        "@pypi for packages from PyPI"
    )


def find_python(wanted: str | None) -> str:
    """The interpreter a @pypi environment is made from: this one, or pythonX.Y on PATH."""
    here = f"{sys.version_info.major}.{sys.version_info.minor}"
    if not wanted or wanted == here or wanted.startswith(here + "."):
        return getattr(sys, "_base_executable", None) or sys.executable
    short = ".".join(wanted.split(".")[:2])
    found = shutil.which(f"python{short}")
    if found is None:
        raise EnvironmentSetupError(
            f"python={wanted!r} asks for Python {short}, but there is no python{short} on PATH "
            "(aflow makes @pypi environments from an installed interpreter)"
        )
    return found


def env_python(folder: Path) -> Path:
    return folder / "bin" / "python"


def ensure(spec: EnvSpec, stored_lock: str | None, steps: list[str]) -> tuple[ResolvedEnv, str, bool]:
    """Make (or find) the environment: (it, its lock text, whether it was made now). Blocking:
    run it in a thread. With `stored_lock`, installs exactly that; else resolves and locks."""
    root = cache_root()
    root.mkdir(parents=True, exist_ok=True)
    folder = root / spec.key
    python = "" if spec.target else str(env_python(folder))  # a remote one is made in its container
    resolved = ResolvedEnv(spec.key, spec.kind, python, lock_key(spec.key), spec.target_python)
    if (folder / READY).exists():
        return resolved, (folder / LOCK_NAME).read_text(), False
    with open(root / f"{spec.key}.lock", "w") as guard:
        fcntl.flock(guard, fcntl.LOCK_EX)  # another run making the same one: wait for it
        if (folder / READY).exists():
            return resolved, (folder / LOCK_NAME).read_text(), False
        shutil.rmtree(folder, ignore_errors=True)  # what a crashed attempt left
        where = ", ".join(f"'{s}'" for s in steps)
        try:
            if spec.target:
                folder.mkdir(parents=True)
                lock = stored_lock or _lock_for_target(spec)
            elif spec.kind == "pypi":
                lock = _make_venv(spec, folder, stored_lock)
            else:
                lock = _make_conda(spec, folder, stored_lock)
        except EnvironmentSetupError as e:
            shutil.rmtree(folder, ignore_errors=True)
            raise EnvironmentSetupError(f"step {where}: {spec.describe()}: {e}") from None
        (folder / LOCK_NAME).write_text(lock)
        (folder / READY).touch()
        return resolved, lock, True


def _run(args: list[str], what: str) -> str:
    done = subprocess.run(args, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        reason = "\n".join((done.stderr or done.stdout).strip().splitlines()[-12:])
        raise EnvironmentSetupError(f"{what} failed:\n{reason}")
    return done.stdout


def _pip(python: Path) -> list[str]:
    # This process's pip, aimed at the environment: no pip needs installing into it.
    quiet = ["--disable-pip-version-check", "--no-input"]
    return [sys.executable, "-m", "pip", "--python", str(python), *quiet]


@contextlib.contextmanager
def _text_file(text: str) -> Iterator[str]:
    """`text` in a temporary file, for a tool that reads its input from a path."""
    with tempfile.TemporaryDirectory() as scratch:
        path = os.path.join(scratch, "lock.txt")
        with open(path, "w") as f:
            f.write(text)
        yield path


def _make_venv(spec: EnvSpec, folder: Path, stored_lock: str | None) -> str:
    _run([find_python(spec.python), "-m", "venv", "--without-pip", str(folder)], "making the venv")
    python = env_python(folder)
    if stored_lock is not None:
        with _text_file(stored_lock) as lock:
            _run([*_pip(python), "install", "-q", "--no-deps", "-r", lock], "pip install (lock)")
        return stored_lock
    _run([*_pip(python), "install", "-q", *spec.requirements, *spec.runtime], "pip install")
    return _run([*_pip(python), "freeze", "--all"], "pip freeze")


def _lock_for_target(spec: EnvSpec) -> str:
    """A lock for a remote step's container: pip resolves for its platform and Python (wheels
    only) without installing anything here."""
    with tempfile.TemporaryDirectory() as scratch:
        report = os.path.join(scratch, "report.json")
        tags = REMOTE_PLATFORMS.get(spec.target or "")
        if tags is None:
            known = ", ".join(REMOTE_PLATFORMS)
            raise EnvironmentSetupError(f"AFLOW_REMOTE_PLATFORM={spec.target!r}: not one of {known}")
        platforms = [f"--platform={p}" for p in tags]
        args = [
            sys.executable, "-m", "pip", "install", "--disable-pip-version-check", "--no-input",
            "--dry-run", "--ignore-installed", "--only-binary=:all:", "--target", scratch,
            "--report", report, "--python-version", spec.target_python, *platforms,
            *spec.requirements, *spec.runtime,
        ]  # fmt: skip
        _run(args, f"pip resolving for {spec.target}, Python {spec.target_python} (wheels only)")
        with open(report) as f:
            installs = json.load(f)["install"]
    return "".join(f"{i['metadata']['name']}=={i['metadata']['version']}\n" for i in installs)


def _make_conda(spec: EnvSpec, folder: Path, stored_lock: str | None) -> str:
    tool = find_conda()
    if stored_lock is not None:
        with _text_file(stored_lock) as lock:
            _run([tool, "create", "-y", "-p", str(folder), "--file", lock], "conda create (lock)")
        _run([*_pip(env_python(folder)), "install", "-q", *spec.runtime], "pip install (aflow's needs)")
        return stored_lock
    python = f"python={spec.python or '.'.join(map(str, sys.version_info[:2]))}"
    conda_specs = [f"{n}={v}" if v and v[0].isdigit() else f"{n}{v}" for n, v in spec.packages]
    create = [tool, "create", "-y", "-p", str(folder), "-c", "conda-forge", python, *conda_specs]
    _run(create, "conda create")
    _run([*_pip(env_python(folder)), "install", "-q", *spec.runtime], "pip install (aflow's needs)")
    return _run([tool, "list", "-p", str(folder), "--explicit"], "conda list --explicit")


async def prepare(
    decorators: Mapping[str, Mapping[str, Mapping[str, Any]]], datastore: str, store: Any
) -> dict[str, dict[str, str]]:
    """Every step's environment, made or found before the run starts (a package pip cannot find
    fails here, before any task runs): step -> ResolvedEnv.as_dict()."""
    import anyio

    from aflow.decorators import compute_of
    from aflow.stores.base import NotFound

    if not any(kind in own for own in decorators.values() for kind in KINDS):
        return {}  # no step asks for one: aflow's own requirements need not even be read
    settings = EnvironmentSettings.from_env()
    runtime = runtime_pins(requirements_for(datastore))
    wanted: dict[EnvSpec, list[str]] = {}
    for step, own in decorators.items():
        target = settings.remote_platform if compute_of(step, own) else None
        spec = env_spec(step, own, runtime, target)
        if spec is not None:
            wanted.setdefault(spec, []).append(step)
    out: dict[str, dict[str, str]] = {}
    for spec, steps in wanted.items():
        if spec.kind == "conda":
            find_conda()  # before anything else: say what to install
        try:
            stored: str | None = bytes(await store.get(lock_key(spec.key))).decode()
        except NotFound:
            stored = None
        started = time.monotonic()
        if stored is None and not (settings.cache / spec.key / READY).exists():
            print(f"aflow: making {spec.describe()} for {', '.join(steps)} ...", file=sys.stderr)
        resolved, lock, made = await anyio.to_thread.run_sync(ensure, spec, stored, steps)
        if made:
            print(f"aflow: made it in {time.monotonic() - started:.1f} s", file=sys.stderr)
        if stored is None:
            await store.put(lock_key(spec.key), [lock.encode()])
        out.update(dict.fromkeys(steps, resolved.as_dict()))
    return out
