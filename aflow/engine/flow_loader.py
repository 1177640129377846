"""Finding and loading the user's flow class: from a file path (CLI) or by module (task processes).

A flow file is executed under the name `__aflow_main__`, so its `if __name__ == "__main__":` block
does not run (that block starts the CLI, or a script's own run_flow() call); afterwards its classes
and functions are renamed into `__main__`, as if it had been run as a script, so what they pickle
reads back the same in the scheduler, the warm parent and every task.
"""

from __future__ import annotations

import importlib
import importlib.util
import os
import sys
import types
from collections.abc import Iterable
from dataclasses import dataclass

from aflow.exception import AflowException, FlowDefinitionError, Problem
from aflow.flowspec import FlowSpec, loading_flow_file
from aflow.graph import flow_source_file


@dataclass(frozen=True)
class FlowRef:
    """How a task process finds the flow class again."""

    name: str
    module: str
    file: str
    sys_path: tuple[str, ...]

    @classmethod
    def of(cls, flow_cls: type[FlowSpec]) -> FlowRef:
        file = flow_source_file(flow_cls) or ""
        if not file or not os.path.exists(file):
            raise AflowException(
                f"{flow_cls.__name__} is not defined in a file aflow can load again in a task "
                "process: define the flow in a .py file (not a notebook cell)"
            )
        return cls(flow_cls.__name__, flow_cls.__module__, os.path.abspath(file), tuple(sys.path))


def _flows_in(namespace: dict[str, object]) -> list[type[FlowSpec]]:
    found = [
        v
        for v in namespace.values()
        if isinstance(v, type) and issubclass(v, FlowSpec) and v is not FlowSpec
    ]
    # A flow defined in the file wins over flows it merely imports.
    own = [c for c in found if c.__module__ == "__main__"]
    found = own or found
    # A base flow subclassed in the same file is not the flow to run.
    return [c for c in found if not any(o is not c and issubclass(o, c) for o in found)]


_EXEC_NAME = "__aflow_main__"


def exec_flow_file(path: str) -> types.ModuleType:
    """Execute a flow file as a module whose classes and functions belong to `__main__`."""
    with open(path, "rb") as f:
        code = compile(f.read(), path, "exec")
    mod = types.ModuleType(_EXEC_NAME)
    mod.__file__ = path
    sys.modules[_EXEC_NAME] = mod  # what dataclasses and friends look up while the file runs
    with loading_flow_file():
        exec(code, mod.__dict__)
    _adopt(mod.__dict__.values(), path)
    mod.__name__ = "__main__"
    return mod


def _adopt(values: Iterable[object], path: str) -> None:
    for value in values:
        if isinstance(value, (type, types.FunctionType)) and value.__module__ == _EXEC_NAME:
            try:
                value.__module__ = "__main__"
            except (AttributeError, TypeError):
                continue
            if isinstance(value, type):
                if issubclass(value, FlowSpec):
                    # Where the class is defined, even when all its steps come from a base class
                    # in another module: the file a task process must load to find it again.
                    value._aflow_source_file = path  # type: ignore[attr-defined]
                _adopt(vars(value).values(), path)


def load_flow_file(path: str) -> type[FlowSpec]:
    """Run a flow file as `__main__` and return the FlowSpec subclass it runs: its only one, or
    of several the one named (`flow.py:MyFlow`) or instantiated under `__main__` (as Metaflow
    runs the one that `python flow.py` starts)."""
    named = None
    if not os.path.isfile(path) and ":" in os.path.basename(path):
        path, _, named = path.rpartition(":")
    path = os.path.abspath(path)
    if not os.path.isfile(path):
        raise AflowException(f"no flow file at {path}")
    sys.path.insert(0, os.path.dirname(path))
    try:
        namespace = exec_flow_file(path).__dict__
    except SyntaxError as e:
        raise FlowDefinitionError(
            [Problem(f"syntax error: {e.msg}", None, e.filename or path, e.lineno)]
        ) from None
    flows = _flows_in(namespace)
    if not flows:
        raise FlowDefinitionError([Problem("defines no FlowSpec subclass", None, path, 1)])
    wanted = named or (main_flow_name(path) if len(flows) > 1 else None)
    if wanted is not None:
        chosen = namespace.get(wanted)
        if not (isinstance(chosen, type) and issubclass(chosen, FlowSpec)):
            names = ", ".join(c.__name__ for c in flows)
            raise FlowDefinitionError([Problem(f"defines no flow {wanted} (its flows: {names})",
                                               None, path, 1)])  # fmt: skip
        return chosen
    if len(flows) > 1:
        names = ", ".join(c.__name__ for c in flows)
        raise FlowDefinitionError(
            [Problem(f"defines several flows ({names}): name one (flow.py:{flows[0].__name__}) or "
                     'instantiate it under `if __name__ == "__main__":`', None, path, 1)]
        )  # fmt: skip
    return flows[0]


def import_flow(
    name: str, module: str, file: str, sys_path: list[str], by_file: bool = False
) -> type[FlowSpec]:
    """Load the flow class in a task process (or the warm parent that forks them).

    `by_file` (a container): the module is loaded from the flow file under its own name, since the
    package it belonged to on the user's machine is not there."""
    if module in sys.modules and hasattr(sys.modules[module], name):
        loaded: type[FlowSpec] = getattr(sys.modules[module], name)
        return loaded
    for p in reversed(sys_path):
        if p not in sys.path:
            sys.path.insert(0, p)
    if module == "__main__":
        sys.path.insert(0, os.path.dirname(file))
        mod = exec_flow_file(file)
        sys.modules["__main__"] = mod  # this process exists to run the flow: it is its main
    elif by_file:
        spec = importlib.util.spec_from_file_location(module, file)
        if spec is None or spec.loader is None:
            raise AflowException(f"cannot load {file} as module {module}")
        mod = importlib.util.module_from_spec(spec)
        sys.modules[module] = mod  # what pickles of its classes look up
        with loading_flow_file():
            spec.loader.exec_module(mod)
    else:
        with loading_flow_file():
            mod = importlib.import_module(module)
    flow_cls: type[FlowSpec] | None = getattr(mod, name, None)
    if flow_cls is None:
        raise AflowException(f"{file} no longer defines {name}")
    return flow_cls


def main_flow_name(path: str) -> str | None:
    """The class a flow file instantiates under `if __name__ == "__main__":`, read from its source
    without running it (None if it has no such block or the file does not parse)."""
    import ast

    try:
        with open(path, encoding="utf-8") as f:
            tree = ast.parse(f.read(), path)
    except (OSError, SyntaxError, ValueError):
        return None
    classes = {n.name for n in tree.body if isinstance(n, ast.ClassDef)}
    for node in tree.body:
        if isinstance(node, ast.If) and "__main__" in ast.unparse(node.test):
            for call in ast.walk(node):
                func = call.func if isinstance(call, ast.Call) else None
                if isinstance(func, ast.Name) and func.id in classes:
                    return func.id
    return None
