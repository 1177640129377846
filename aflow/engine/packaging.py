"""The code package: what a remote task needs of the user's code, as one reproducible tarball.

It holds the flow file and the files beside it, the local modules the flow imports from elsewhere,
and aflow itself; never version-control folders, virtualenvs, caches, secrets (.env files, keys,
credentials) or files over a size limit, and it says which files it skipped and why. The same
content always makes the same bytes (sorted entries, fixed times and owners, gzip without a
timestamp), so the package is stored once under its hash however often the flow runs.
"""

from __future__ import annotations

import ast
import fnmatch
import gzip
import hashlib
import importlib.util
import io
import os
import sys
import sysconfig
import tarfile
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import aflow

MiB = 1 << 20
DEFAULT_MAX_FILE_SIZE = 10 * MiB
DEFAULT_EXCLUDES = (
    ".git", ".hg", ".svn", "__pycache__", "*.pyc", "*.pyo", ".aflow", ".metaflow",
    ".venv", "venv", "node_modules", ".mypy_cache", ".pytest_cache", ".ruff_cache", ".tox",
    "*.egg-info", ".ipynb_checkpoints", ".DS_Store",
)  # fmt: skip
SECRETS = (
    ".env", ".env.*", "*.pem", "*.key", "*.p12", "*.pfx", "id_rsa*", "id_dsa*", "id_ecdsa*",
    "id_ed25519*", ".aws", ".ssh", ".netrc", ".pgpass", "credentials", "*credentials*.json",
    ".git-credentials", "*.kubeconfig", "kubeconfig",
)  # fmt: skip


@dataclass
class CodePackage:
    data: bytes
    digest: str
    files: list[str] = field(default_factory=list)
    skipped: list[tuple[str, str]] = field(default_factory=list)  # (path, why)

    @property
    def size(self) -> int:
        return len(self.data)


def _matches(relative: str, patterns: Iterable[str]) -> str | None:
    parts = relative.split("/")
    for pattern in patterns:
        if fnmatch.fnmatch(relative, pattern) or any(fnmatch.fnmatch(p, pattern) for p in parts):
            return pattern
    return None


def _is_virtualenv(folder: Path) -> bool:
    return (folder / "pyvenv.cfg").exists()


def _walk(root: Path) -> Iterator[Path]:
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames.sort()
        for name in sorted(filenames):
            yield Path(dirpath) / name


def library_roots() -> list[str]:
    """Where this interpreter's standard library and installed packages live."""
    paths = sysconfig.get_paths()
    roots = {paths.get(k, "") for k in ("stdlib", "platstdlib", "purelib", "platlib")}
    roots |= {sys.prefix, sys.base_prefix, sys.exec_prefix}
    return [os.path.realpath(r) for r in roots if r]


def _imported_names(file: Path) -> set[str]:
    try:
        tree = ast.parse(file.read_text(encoding="utf-8"), str(file))
    except (OSError, SyntaxError, UnicodeDecodeError):
        return set()
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
            names.add(node.module)
            names.update(f"{node.module}.{alias.name}" for alias in node.names)
    return names


def _local_modules(flow_path: Path, root: Path) -> Iterator[tuple[str, Path]]:
    """The user's own modules the flow imports, directly or through each other, that live outside
    its folder (not the standard library, installed packages or aflow): (archive name, file)."""
    libraries = library_roots()
    aflow_dir = os.path.realpath(os.path.dirname(aflow.__file__))
    inside = str(root.resolve()) + os.sep
    seen: set[str] = set()
    todo = [flow_path]
    while todo:
        for name in sorted(_imported_names(todo.pop())):
            if name in seen:
                continue
            seen.add(name)
            try:
                spec = importlib.util.find_spec(name)
            except (ImportError, ValueError):
                continue
            origin = spec.origin if spec else None
            if not origin or not origin.endswith(".py"):
                continue
            real = os.path.realpath(origin)
            if real.startswith(aflow_dir) or any(real.startswith(lib) for lib in libraries):
                continue
            todo.append(Path(real))
            if not real.startswith(inside):
                tail = "/__init__.py" if real.endswith("__init__.py") else ".py"
                yield name.replace(".", "/") + tail, Path(real)


def build_package(
    flow_file: str | os.PathLike[str],
    include: Iterable[str] = (),
    exclude: Iterable[str] = (),
    max_file_size: int | None = None,
) -> CodePackage:
    """The package for a flow file (call after the flow is loaded, so its imports are known)."""
    flow_path = Path(flow_file).resolve()
    root = flow_path.parent
    limit = max_file_size or int(os.environ.get("AFLOW_PACKAGE_MAX_FILE_SIZE") or DEFAULT_MAX_FILE_SIZE)
    include, exclude = list(include), list(exclude)
    chosen: dict[str, Path] = {}
    skipped: list[tuple[str, str]] = []
    for path in _walk(root):
        relative = path.relative_to(root).as_posix()
        if path == flow_path:
            chosen[relative] = path
            continue
        forced = _matches(relative, include)
        secret = _matches(relative, SECRETS)
        if secret:
            skipped.append((relative, f"looks like a secret ({secret})"))
            continue
        if not forced:
            rule = _matches(relative, [*DEFAULT_EXCLUDES, *exclude])
            if rule:
                if rule not in DEFAULT_EXCLUDES:  # the user's own excludes are worth a mention
                    skipped.append((relative, f"excluded ({rule})"))
                continue
            folders = path.relative_to(root).parents
            if any(_is_virtualenv(root / p) for p in folders if p != Path(".")):
                continue  # a virtualenv, whatever its name
        if path.is_symlink() and not path.resolve().is_relative_to(root):
            skipped.append((relative, "a link to outside the flow's folder"))
            continue
        size = path.stat().st_size
        if size > limit and not forced:
            skipped.append((relative, f"{size / MiB:.1f} MiB, over the {limit / MiB:.0f} MiB limit"))
            continue
        chosen[relative] = path
    for archive, path in _local_modules(flow_path, root):
        chosen.setdefault(archive, path)
    aflow_root = Path(aflow.__file__).resolve().parent
    for path in _walk(aflow_root):
        inside = path.relative_to(aflow_root).as_posix()
        # With the card renderer and its chart libraries: a remote task renders its cards' HTML.
        card_asset = inside.startswith("cards/") and path.suffix in (".js", ".css")
        if path.suffix == ".py" or path.name == "py.typed" or card_asset:
            chosen[f"aflow/{inside}"] = path
    data = _tarball(chosen)
    return CodePackage(data, hashlib.sha256(data).hexdigest(), sorted(chosen), skipped)


def _tarball(files: dict[str, Path]) -> bytes:
    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for name in sorted(files):
            content = files[name].read_bytes()
            info = tarfile.TarInfo(name)
            info.size = len(content)
            info.mode = 0o755 if os.access(files[name], os.X_OK) else 0o644
            info.mtime = 0
            info.uid = info.gid = 0
            info.uname = info.gname = ""
            tar.addfile(info, io.BytesIO(content))
    packed = io.BytesIO()
    with gzip.GzipFile(fileobj=packed, mode="wb", mtime=0) as gz:
        gz.write(raw.getvalue())
    return packed.getvalue()


def unpack(data: bytes, target: str | os.PathLike[str]) -> None:
    """Extract a package (in a container, before the task runs)."""
    with tarfile.open(fileobj=io.BytesIO(data), mode="r:gz") as tar:
        tar.extractall(target, filter="data")
