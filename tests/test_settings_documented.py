"""Every `AFLOW_*` variable aflow's code names is in the README's Settings section: in its table (what
a user may set) or in its list of those aflow sets for the containers it starts.

Names are found in the string literals of aflow/ (f-strings' fixed parts included), so a variable
read, set for a container or named in a message counts alike. A name ending in `_` (an f-string's
prefix, e.g. `AFLOW_RUN_{name}`) is documented by any README name that starts with it; the README's
`AFLOW_CODE_*` documents every name that starts with `AFLOW_CODE_`.
"""

from __future__ import annotations

import ast
import re
from collections.abc import Iterable
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
NAME = re.compile(r"AFLOW_[A-Z0-9_]*")


def named_in(source: str) -> set[str]:
    """The AFLOW_ names in a module's string literals (not comments or code identifiers)."""
    found: set[str] = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Constant) and isinstance(node.value, str):
            found.update(NAME.findall(node.value))
    found.discard("AFLOW_")  # the namespace itself (e.g. "no secret may start with AFLOW_")
    return found


def settings_section(readme: str) -> str:
    start = readme.index("\n## Settings")
    end = readme.index("\n## ", start + 1)
    return readme[start:end]


def undocumented(names: Iterable[str], section: str) -> set[str]:
    documented = set(NAME.findall(section))
    prefixes = {d for d in documented if d.endswith("_")}  # AFLOW_CODE_* and AFLOW_RUN_<NAME>
    return {
        name
        for name in names
        if name not in documented
        and not any(name.startswith(p) for p in prefixes)
        and not (name.endswith("_") and any(d.startswith(name) for d in documented))
    }


def test_every_aflow_variable_is_in_the_readme() -> None:
    where: dict[str, list[str]] = {}
    for path in sorted((ROOT / "aflow").rglob("*.py")):
        for name in named_in(path.read_text(encoding="utf-8")):
            where.setdefault(name, []).append(str(path.relative_to(ROOT)))
    section = settings_section((ROOT / "README.md").read_text(encoding="utf-8"))
    missing = {name: where[name] for name in sorted(undocumented(where, section))}
    assert not missing, (
        "add these to the README's Settings table (or its list of variables aflow sets): "
        f"{missing}"
    )


def test_the_check_sees_a_missing_name() -> None:
    """The check above can fail: a read of an unlisted name, even through an f-string, is caught."""
    source = 'import os\nos.environ.get("AFLOW_NOT_LISTED")\nos.environ[f"AFLOW_ALSO_NOT_{x}"]\n'
    section = "| `AFLOW_LISTED` | 1 | ... |\nset by aflow: `AFLOW_CODE_*`, `AFLOW_RUN_<NAME>`"
    names = named_in(source) | {"AFLOW_LISTED", "AFLOW_CODE_DIR", "AFLOW_RUN_"}
    assert undocumented(names, section) == {"AFLOW_NOT_LISTED", "AFLOW_ALSO_NOT_"}
