"""aflow's modules import each other one way: no import cycle among them, no cycle among the modules of
any one subpackage, and the lower layers (stores, the client) never reach up into the ones that use
them (engine, backends, command line, UI).

The graph is grimp's, read from the source without importing it. An import inside a function counts
like one at the top of the module: it runs as soon as the function does, so a cycle through it is a
cycle (it only fails later, in the middle of a run rather than at import). Imports under
`if TYPE_CHECKING:` never run and do not count. The one import allowed to point back up is listed in
UPWARD with its reason; the test also checks that it still exists and still sits inside a function.
"""

from __future__ import annotations

import ast
import importlib.util
import itertools
from pathlib import Path

import grimp
import pytest

# importer -> imported: deliberate calls up the layers, made at run time inside a function.
UPWARD = {
    ("aflow.flowspec", "aflow.cli"): (
        "`MyFlow()` at the bottom of a flow file hands the process to the command line "
        "(`python flow.py run`), as Metaflow's FlowSpec does"
    ),
}

# package -> packages it must not reach, directly or through others.
BELOW = {
    "aflow.stores": [
        "aflow.engine", "aflow.backends", "aflow.cli", "aflow.client", "aflow.ui", "aflow.cards"
    ],
    "aflow.client": ["aflow.engine", "aflow.backends", "aflow.cli", "aflow.ui"],
    "aflow.engine": ["aflow.cli"],
    "aflow.backends": ["aflow.cli"],
    "aflow.ui": ["aflow.cli", "aflow.engine", "aflow.backends"],
    "aflow.cards": ["aflow.cli", "aflow.engine", "aflow.backends"],
    # the pairs issue 16 found importing each other, each now one way
    "aflow.engine.wire": ["aflow.backends"],
    "aflow.engine.environments": ["aflow.backends"],
    "aflow.stores.base": [
        "aflow.stores.local", "aflow.stores.memory", "aflow.stores.portal", "aflow.stores.threaded",
        "aflow.stores.s3", "aflow.stores.azure", "aflow.stores.gcs", "aflow.stores.factory",
    ],
    "aflow.parameters": ["aflow.config"],
    "aflow.graph": ["aflow.flowspec"],
    "aflow.cli.inspect": ["aflow.cli.app"],
    "aflow.cli.common": ["aflow.cli.app", "aflow.cli.inspect"],
}


@pytest.fixture(scope="module")
def graph() -> grimp.ImportGraph:
    g = grimp.build_graph("aflow", exclude_type_checking_imports=True, cache_dir=None)
    for importer, imported in UPWARD:
        g.remove_import(importer=importer, imported=imported)
    return g


def cycles(g: grimp.ImportGraph) -> list[list[str]]:
    """Every import cycle among the modules, each once: [a, b, ..., a]."""
    found: dict[tuple[str, ...], list[str]] = {}
    for importer in sorted(g.modules):
        for imported in sorted(g.find_modules_directly_imported_by(importer)):
            back = g.find_shortest_chain(importer=imported, imported=importer)
            if back:
                cycle = [importer, *back]
                start = cycle.index(min(cycle[:-1]))
                key = tuple(cycle[start:-1] + cycle[:start])
                found.setdefault(key, [*key, key[0]])
    return list(found.values())


def describe(g: grimp.ImportGraph, cycle: list[str]) -> str:
    steps = []
    for importer, imported in itertools.pairwise(cycle):
        lines = [d["line_number"] for d in g.get_import_details(importer=importer, imported=imported)]
        steps.append(f"{importer}:{','.join(map(str, lines))} imports {imported}")
    return "\n    ".join(steps)


def test_no_import_cycle_among_modules(graph: grimp.ImportGraph) -> None:
    found = cycles(graph)
    report = "\n  ".join(describe(graph, c) for c in found)
    assert not found, f"{len(found)} import cycle(s); move what both sides need below both:\n  {report}"


def test_each_package_imports_its_parts_one_way(graph: grimp.ImportGraph) -> None:
    packages = sorted(m for m in graph.modules if graph.find_children(m) and m != "aflow")
    broken = {p: sorted(graph.nominate_cycle_breakers(p)) for p in packages}
    broken = {p: b for p, b in broken.items() if b}
    assert not broken, f"modules of one package import each other in a circle: {broken}"


@pytest.mark.parametrize("package", sorted(BELOW))
def test_lower_layers_do_not_reach_up(graph: grimp.ImportGraph, package: str) -> None:
    reached = {}
    for upper in BELOW[package]:
        chain = graph.find_shortest_chain(importer=package, imported=upper, as_packages=True)
        if chain:
            reached[upper] = " > ".join(chain)
    assert not reached, f"{package} reaches up: {reached}"


@pytest.mark.parametrize(("importer", "imported"), sorted(UPWARD))
def test_each_allowed_upward_import_is_inside_a_function(importer: str, imported: str) -> None:
    """An UPWARD entry that no longer exists, or moved to the top of its module, is an error."""
    spec = importlib.util.find_spec(importer)
    assert spec is not None and spec.origin is not None
    tree = ast.parse(Path(spec.origin).read_text(encoding="utf-8"))
    in_functions = {
        node.module
        for fn in ast.walk(tree)
        if isinstance(fn, ast.FunctionDef | ast.AsyncFunctionDef)
        for node in ast.walk(fn)
        if isinstance(node, ast.ImportFrom)
    }
    at_top = {node.module for node in tree.body if isinstance(node, ast.ImportFrom)}
    assert imported in in_functions, f"{importer} no longer imports {imported}: drop it from UPWARD"
    assert imported not in at_top, f"{importer} imports {imported} at import time: a real cycle"


def test_the_guard_sees_a_cycle(graph: grimp.ImportGraph) -> None:
    """The check above can fail: one import added against the grain makes a cycle it names."""
    graph.add_import(importer="aflow.stores.base", imported="aflow.engine.scheduler")
    try:
        found = [c for c in cycles(graph) if "aflow.stores.base" in c]
        assert found and "aflow.engine.scheduler" in found[0]
    finally:
        graph.remove_import(importer="aflow.stores.base", imported="aflow.engine.scheduler")
