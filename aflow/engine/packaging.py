"""The code package: what a remote task needs of the user's code, as one reproducible tarball.

Safe by construction: it holds the flow file, the local modules the flow imports (directly or
through each other; the standard library and installed packages stay out), the files the user
names explicitly (`AFLOW_PACKAGE_INCLUDE`, `aflow package --include`, or a `package_include` list
on the flow class), and aflow itself. Nothing else of the flow's folder goes in. A denylist of
credential files (cloud, kube, docker, package-index, shell history, tfstate, key files) is a second
guard that even an explicit include cannot pass. A warning is given above a total size. The same
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

from aflow.about import PACKAGE_DIR
from aflow.env_numbers import env_int

MiB = 1 << 20
DEFAULT_MAX_FILE_SIZE = 10 * MiB
DEFAULT_WARN_SIZE = 50 * MiB  # of the user's own files: every container downloads them
# Folders never looked into when matching include patterns (nor listed as left out).
NEVER_WALKED = (
    ".git", ".hg", ".svn", "__pycache__", ".aflow", ".metaflow", ".venv", "venv", "node_modules",
    ".mypy_cache", ".pytest_cache", ".ruff_cache", ".tox", "*.egg-info", ".ipynb_checkpoints",
)  # fmt: skip
NEVER_PACKED = ("*.pyc", "*.pyo", ".DS_Store")
# The second guard: files that hold credentials, never packaged whatever selected them. A pattern
# with a "/" matches the end of a path ("x/.kube/config"); one without matches any path component.
CREDENTIALS = (
    # generic secrets and keys
    ".env", ".env.*", "*.env", ".envrc", "*.pem", "*.key", "*.p12", "*.pfx", "*.jks", "*.keystore",
    "*.ppk", "id_rsa*", "id_dsa*", "id_ecdsa*", "id_ed25519*", ".ssh", ".gnupg", ".netrc", "_netrc",
    ".pgpass", ".my.cnf", ".htpasswd", "credentials", "credentials.toml", "*credentials*.json",
    "*-key.json", "*_key.json", "service-account*.json", "secrets.toml", "secrets.yaml",
    "secrets.yml", "secrets.json", ".git-credentials", ".vault-token",
    # cloud CLIs
    ".aws", ".s3cfg", ".boto", ".azure", "msal_token_cache.*", "accessTokens.json",
    "azureProfile.json", ".config/gcloud", "credentials.db", "access_tokens.db",
    "legacy_credentials", "application_default_credentials.json", ".oci",
    # kubernetes, docker, terraform
    ".kube", "kubeconfig", "*.kubeconfig", ".docker", ".dockercfg", "*.tfstate", "*.tfstate.*",
    ".terraform", ".terraformrc", "terraform.rc", "*.tfvars",
    # package indexes
    ".pypirc", ".npmrc", ".yarnrc", ".yarnrc.yml", "pip.conf", "pip.ini", ".cargo", ".gem",
    ".condarc",
    # shell and REPL histories
    ".*_history", ".*history", ".lesshst", ".viminfo",
    # apps
    ".streamlit",
)  # fmt: skip
# Kept for callers of the old names.
DEFAULT_EXCLUDES = NEVER_WALKED + NEVER_PACKED
SECRETS = CREDENTIALS

WHY_FLOW = "the flow file"
WHY_IMPORTED = "imported"
WHY_INCLUDED = "included"
WHY_AFLOW = "aflow"


@dataclass
class CodePackage:
    data: bytes
    digest: str
    files: list[str] = field(default_factory=list)
    skipped: list[tuple[str, str]] = field(default_factory=list)  # (path, why)
    why: dict[str, str] = field(default_factory=dict)  # archive name -> why it is in
    left_out: list[str] = field(default_factory=list)  # files of the folder not selected
    own_size: int = 0  # bytes of the user's files, before compression
    warnings: list[str] = field(default_factory=list)

    @property
    def size(self) -> int:
        return len(self.data)


def _matches(relative: str, patterns: Iterable[str]) -> str | None:
    parts = relative.split("/")
    for pattern in patterns:
        if fnmatch.fnmatch(relative, pattern) or any(fnmatch.fnmatch(p, pattern) for p in parts):
            return pattern
    return None


def credential_rule(path: str) -> str | None:
    """The denylist pattern a path matches (relative or absolute), if any."""
    relative = path.replace(os.sep, "/").lstrip("/")
    parts = relative.split("/")
    for pattern in CREDENTIALS:
        if "/" in pattern:
            if (
                relative == pattern
                or relative.endswith("/" + pattern)
                or f"/{pattern}/" in ("/" + relative)
            ):
                return pattern
        elif any(fnmatch.fnmatch(p, pattern) for p in parts):
            return pattern
    return None


def _is_virtualenv(folder: Path) -> bool:
    return (folder / "pyvenv.cfg").exists()


def _walk(root: Path) -> Iterator[Path]:
    """Every file under root, in a fixed order, without looking into folders that never hold the
    user's code (version control, caches, virtualenvs)."""
    for dirpath, dirnames, filenames in os.walk(root):
        here = Path(dirpath)
        dirnames[:] = sorted(
            d for d in dirnames if _matches(d, NEVER_WALKED) is None and not _is_virtualenv(here / d)
        )
        for name in sorted(filenames):
            if _matches(name, NEVER_PACKED) is None:
                yield here / name


def library_roots() -> list[str]:
    """Where this interpreter's standard library and installed packages live."""
    paths = sysconfig.get_paths()
    roots = {paths.get(k, "") for k in ("stdlib", "platstdlib", "purelib", "platlib")}
    roots |= {sys.prefix, sys.base_prefix, sys.exec_prefix}
    return [os.path.realpath(r) for r in roots if r]


def _imported_names(file: Path, module: str | None) -> set[str]:
    """Absolute names of the modules a file imports (every prefix of a dotted name: importing
    `a.b` runs `a/__init__.py` too). `module` is the file's own dotted name, for relative imports."""
    try:
        tree = ast.parse(file.read_text(encoding="utf-8"), str(file))
    except (OSError, SyntaxError, UnicodeDecodeError):
        return set()
    package = None
    if module:
        package = module if file.name == "__init__.py" else module.rpartition(".")[0]
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                if not package:
                    continue
                parts = package.split(".")
                if node.level - 1 > len(parts) - 1:
                    continue
                anchor = ".".join(parts[: len(parts) - (node.level - 1)])
                base = f"{anchor}.{base}" if base else anchor
            if not base:
                continue
            names.add(base)
            names.update(f"{base}.{alias.name}" for alias in node.names if alias.name != "*")
    return {".".join(n.split(".")[: i + 1]) for n in names for i in range(n.count(".") + 1)}


def _local_modules(flow_path: Path, root: Path) -> Iterator[tuple[str, Path]]:
    """The user's own modules the flow imports, directly or through each other (not the standard
    library, installed packages or aflow): (archive name, file). A module inside the flow's folder
    keeps its place there; one from elsewhere on the path goes in under its dotted name."""
    libraries = [lib + os.sep for lib in library_roots()]
    aflow_dir = str(PACKAGE_DIR) + os.sep
    inside = str(root) + os.sep
    seen: set[str] = set()
    todo: list[tuple[Path, str | None]] = [(flow_path, None)]
    while todo:
        file, module = todo.pop()
        for name in sorted(_imported_names(file, module)):
            if name in seen or name == "__main__":
                continue
            seen.add(name)
            try:
                spec = importlib.util.find_spec(name)
            except (ImportError, ValueError, AttributeError):
                continue
            origin = spec.origin if spec else None
            if not origin or not origin.endswith(".py"):
                continue
            real = os.path.realpath(origin)
            if real.startswith(aflow_dir) or any(real.startswith(lib) for lib in libraries):
                continue
            todo.append((Path(real), name))
            if real.startswith(inside):
                yield Path(real).relative_to(root).as_posix(), Path(real)
            else:
                tail = "/__init__.py" if real.endswith("__init__.py") else ".py"
                yield name.replace(".", "/") + tail, Path(real)


def flow_class_includes(flow_path: Path) -> list[str]:
    """The `package_include = [...]` patterns of the flow classes in a file (read, not run)."""
    try:
        tree = ast.parse(flow_path.read_text(encoding="utf-8"), str(flow_path))
    except (OSError, SyntaxError, UnicodeDecodeError):
        return []
    found: list[str] = []
    for node in tree.body:
        if not isinstance(node, ast.ClassDef):
            continue
        for item in node.body:
            assigned = _assigned(item, "package_include")
            if assigned is None:
                continue
            try:
                value = ast.literal_eval(assigned)
            except ValueError:
                continue
            found.extend([value] if isinstance(value, str) else list(value))
    return [str(p) for p in found]


def _assigned(item: ast.stmt, name: str) -> ast.expr | None:
    """The value `item` assigns to `name` (`name = ...` or `name: T = ...`), else None."""
    if isinstance(item, ast.Assign):
        named = any(isinstance(t, ast.Name) and t.id == name for t in item.targets)
        return item.value if named else None
    if isinstance(item, ast.AnnAssign) and isinstance(item.target, ast.Name):
        return item.value if item.target.id == name else None
    return None


def env_patterns(name: str) -> list[str]:
    """Comma-separated patterns of a setting (AFLOW_PACKAGE_INCLUDE, AFLOW_PACKAGE_EXCLUDE)."""
    return [p.strip() for p in (os.environ.get(name) or "").split(",") if p.strip()]


def build_package(
    flow_file: str | os.PathLike[str],
    include: Iterable[str] = (),
    exclude: Iterable[str] = (),
    max_file_size: int | None = None,
    survey: bool = False,
) -> CodePackage:
    """The package for a flow file (call after the flow is loaded, so its imports are found the
    way the flow finds them). The flow's folder is walked only to match include patterns, or with
    `survey` to list what is left out (for `aflow package`)."""
    flow_path = Path(flow_file).resolve()
    root = flow_path.parent
    limit = max_file_size or env_int("AFLOW_PACKAGE_MAX_FILE_SIZE", DEFAULT_MAX_FILE_SIZE, minimum=0)
    warn_size = env_int("AFLOW_PACKAGE_WARN_SIZE", DEFAULT_WARN_SIZE, minimum=0)
    include = [*include, *flow_class_includes(flow_path)]
    exclude = list(exclude)
    chosen: dict[str, Path] = {flow_path.name: flow_path}
    why: dict[str, str] = {flow_path.name: WHY_FLOW}
    skipped: list[tuple[str, str]] = []
    left_out: list[str] = []

    def take(archive: str, path: Path, reason: str) -> None:
        if archive in chosen:
            return
        rule = credential_rule(archive)
        if rule:
            skipped.append((archive, f"looks like a credential file ({rule}), never packaged"))
            return
        user_rule = _matches(archive, exclude)
        if user_rule:
            skipped.append((archive, f"excluded ({user_rule})"))
            return
        chosen[archive], why[archive] = path, reason

    for archive, path in _local_modules(flow_path, root):
        take(archive, path, WHY_IMPORTED)
    for path in _walk(root) if include or survey else ():
        relative = path.relative_to(root).as_posix()
        if relative in chosen:
            continue
        pattern = _matches(relative, include)
        if pattern is None:
            rule = credential_rule(relative)
            if rule:
                skipped.append((relative, f"looks like a credential file ({rule}), never packaged"))
            else:
                left_out.append(relative)
            continue
        if path.is_symlink() and not path.resolve().is_relative_to(root):
            skipped.append((relative, "a link to outside the flow's folder"))
            continue
        size = path.stat().st_size
        if size > limit:
            skipped.append(
                (
                    relative,
                    f"{size / MiB:.1f} MiB, over the {limit / MiB:.0f} MiB limit "
                    "(AFLOW_PACKAGE_MAX_FILE_SIZE)",
                )
            )
            continue
        take(relative, path, f"{WHY_INCLUDED} ({pattern})")
    own_size = sum(p.stat().st_size for p in chosen.values())
    aflow_root = PACKAGE_DIR
    for path in _walk(aflow_root):
        inside = path.relative_to(aflow_root).as_posix()
        # With the card renderer and its chart libraries: a remote task renders its cards' HTML.
        card_asset = inside.startswith("cards/") and path.suffix in (".js", ".css")
        if path.suffix == ".py" or path.name == "py.typed" or card_asset:
            chosen[f"aflow/{inside}"], why[f"aflow/{inside}"] = path, WHY_AFLOW
    warnings = []
    if own_size > warn_size:
        warnings.append(
            f"the code package holds {own_size / MiB:.1f} MiB of the flow's files (over "
            f"{warn_size / MiB:.0f} MiB, AFLOW_PACKAGE_WARN_SIZE): every remote task downloads it; "
            "keep data in the datastore (artifacts, IncludeFile) rather than in the package"
        )
    data = _tarball(chosen)
    return CodePackage(
        data,
        hashlib.sha256(data).hexdigest(),
        sorted(chosen),
        skipped,
        why,
        left_out,
        own_size,
        warnings,
    )


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
        try:
            tar.extractall(target, filter="data")
        except TypeError:  # Python before 3.11.4 (Debian 12's 3.11.2) has no extraction filters
            tar.extractall(target, members=_plain_members(tar))


def _plain_members(tar: tarfile.TarFile) -> list[tarfile.TarInfo]:
    """What the "data" filter would allow of our own packages: files and folders inside the
    target, nothing absolute, no `..`, no links or devices."""
    for member in tar.getmembers():
        parts = member.name.split("/")
        if member.name.startswith("/") or ".." in parts or not (member.isfile() or member.isdir()):
            raise ValueError(f"the code package holds an unsafe entry: {member.name!r}")
    return tar.getmembers()
