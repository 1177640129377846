"""How to install an optional extra, said the way that works for this installation of aflow.

aflow is published (if ever) as the distribution `aflow-engine`: the name `aflow` on PyPI belongs to
an unrelated project, so `pip install 'aflow[ui]'` would install that one. A checkout installed with
`pip install -e .` is told to install the extra from the checkout, with the interpreter it runs on.
"""

from __future__ import annotations

import shlex
import sys
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
