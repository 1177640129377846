"""How to install an optional extra, said the way that works for this installation of aflow.

aflow is published (if ever) as the distribution `aflow-engine`: the name `aflow` on PyPI belongs to
an unrelated project, so `pip install 'aflow[ui]'` would install that one. A checkout installed with
`pip install -e .` is told to install the extra from the checkout, with the interpreter it runs on.
"""

from __future__ import annotations

import shlex
import sys
import tomllib
from importlib import metadata
from pathlib import Path

DISTRIBUTION = "aflow-engine"


def _checkout() -> Path | None:
    """The source checkout this aflow is imported from, if it is one (a pyproject.toml beside it)."""
    root = Path(__file__).resolve().parent.parent
    pyproject = root / "pyproject.toml"
    try:
        text = pyproject.read_text(encoding="utf-8")
    except OSError:
        return None
    return root if f'name = "{DISTRIBUTION}"' in text else None


def extra_command(extra: str) -> str:
    """The command that installs `extra` (e.g. 'ui', 'aws') for this aflow."""
    python = shlex.quote(sys.executable)
    root = _checkout()
    if root is not None:
        return f"{python} -m pip install -e {shlex.quote(f'{root}[{extra}]')}"
    return f"{python} -m pip install {shlex.quote(f'{DISTRIBUTION}[{extra}]')}"


def needs_extra(what: str, extra: str) -> str:
    """A message: `what` needs the extra, and how to install it."""
    return f"{what} needs the '{extra}' extra: {extra_command(extra)}"


def declared_requirements() -> list[str]:
    """aflow's requirements with their extra markers, as its installed metadata declares them (or,
    run from a checkout that is not installed, as its pyproject.toml does)."""
    try:
        return metadata.requires(DISTRIBUTION) or []
    except metadata.PackageNotFoundError:
        pass
    root = _checkout()
    if root is None:
        raise RuntimeError(f"aflow's requirements are unknown: {DISTRIBUTION} is not installed")
    project = tomllib.loads((root / "pyproject.toml").read_text(encoding="utf-8"))["project"]
    declared = list(project.get("dependencies", []))
    for extra, requirements in project.get("optional-dependencies", {}).items():
        declared += [f'{r}; extra == "{extra}"' for r in requirements]
    return declared
