"""The flow's DAG, read statically from the class source with `ast`, and its validation.

Everything here runs before any task starts (and is all `aflow check` does). Each problem found
names the step and the file:line to fix. The graph is also what the scheduler walks: node types
(linear, split, foreach, join, end) and the split each join closes.
"""

from __future__ import annotations

import ast
import hashlib
import inspect
import sys
import textwrap
from dataclasses import dataclass, field
from typing import Any

from aflow.exception import FlowDefinitionError, Problem
from aflow.steps import is_step


@dataclass
class StepNode:
    name: str
    file: str
    def_line: int
    out_funcs: list[str] = field(default_factory=list)
    in_funcs: list[str] = field(default_factory=list)
    foreach_param: str | None = None
    takes_inputs: bool = False
    next_line: int | None = None
    doc: str = ""
    decorators: list[str] = field(default_factory=list)
    split_parents: list[str] = field(default_factory=list)
    matching_join: str | None = None
    code_hash: str = ""  # of the step's source: a resume reruns steps whose code changed
    # A conditional step (Metaflow 2.18+): self.next({"a": self.x, "b": self.y}, condition="attr")
    # goes to the one step whose case equals the artifact's value.
    condition: str | None = None
    switch_cases: dict[Any, str] = field(default_factory=dict)
    loops_to: list[str] = field(default_factory=list)  # cases that go back (recursion)

    @property
    def type(self) -> str:
        if self.name == "end":
            return "end"
        if self.takes_inputs:
            return "join"
        if self.foreach_param is not None:
            return "foreach"
        if self.is_switch:
            return "split-switch"
        if len(self.out_funcs) > 1:
            return "split"
        if self.name == "start":
            return "start"
        return "linear"

    @property
    def is_switch(self) -> bool:
        return self.condition is not None

    @property
    def parallel_step(self) -> bool:
        """Metaflow's @parallel gang step: aflow has none."""
        return False

    @property
    def is_split(self) -> bool:
        """A static split or a foreach: every branch runs (a conditional step is not one)."""
        return self.foreach_param is not None or (len(self.out_funcs) > 1 and not self.is_switch)

    def to_dict(self) -> dict[str, Any]:
        return {
            "type": self.type,
            "next": self.out_funcs,
            "foreach": self.foreach_param,
            "line": self.def_line,
            "doc": self.doc,
            "decorators": self.decorators,
            "split_parents": self.split_parents,
            "code": self.code_hash,
            **(
                {
                    "condition": self.condition,
                    "switch_cases": {str(k): v for k, v in self.switch_cases.items()},
                    "loops_to": self.loops_to,
                }
                if self.is_switch
                else {}
            ),
        }


_NO_SOURCE = "cannot read the step's source code"


class FlowGraph:
    """The validated DAG of a flow class."""

    def __init__(self, flow_cls: type) -> None:
        self.flow_cls = flow_cls
        self.name = flow_cls.__name__
        self.file, self.line = _class_location(flow_cls)
        self.problems: list[Problem] = []
        self.nodes: dict[str, StepNode] = {}
        for attr in dir(flow_cls):
            func = getattr(flow_cls, attr, None)
            if is_step(func):
                node = self._parse_step(attr, func)
                if node is not None:
                    self.nodes[attr] = node
        self.order: list[str] = []
        self.loop_edges: set[tuple[str, str]] = set()  # (conditional step, earlier step)
        if self._unreadable_source():
            return
        self._validate()

    def _unreadable_source(self) -> bool:
        """A flow typed into a REPL (or `python -`) has no source to read: say what to do instead
        of reporting every step as missing."""
        if not self.problems or any(p.message != _NO_SOURCE for p in self.problems):
            return False
        where = self.file if self.file != "<unknown>" else "an interactive session"
        self.problems = [
            Problem(
                f"cannot read the source of {self.name} (defined in {where}): define the flow in "
                "a .py file and run it with `aflow run flow.py`, or import it from one",
                None,
                self.file,
                self.line,
            )
        ]
        return True

    def __getitem__(self, name: str) -> StepNode:
        return self.nodes[name]

    def __iter__(self):  # type: ignore[no-untyped-def]
        return (self.nodes[n] for n in self.order)

    def descendants(self, name: str) -> set[str]:
        """The step and every step after it."""
        found, todo = set(), [name]
        while todo:
            step = todo.pop()
            if step not in found:
                found.add(step)
                todo.extend(self.nodes[step].out_funcs)
        return found

    def check(self) -> FlowGraph:
        """Raise FlowDefinitionError listing every problem, or return self."""
        if self.problems:
            raise FlowDefinitionError(self.problems)
        return self

    def to_dict(self) -> dict[str, Any]:
        return {"file": self.file, "steps": {n: self.nodes[n].to_dict() for n in self.order}}

    # -- reading the source ------------------------------------------------------------------

    def _problem(self, message: str, step: str | None = None, line: int | None = None) -> None:
        self.problems.append(Problem(message, step, self.file, line or self.line))

    def _parse_step(self, name: str, step_func: Any) -> StepNode | None:
        # @step above a functools.wraps decorator: the source is the wrapped function's, the
        # decorators are on what @step marked.
        func = inspect.unwrap(step_func)
        try:
            file = inspect.getsourcefile(func) or self.file
            lines, first = inspect.getsourcelines(func)
        except (OSError, TypeError):
            self._problem(_NO_SOURCE, name)
            return None
        source = "".join(lines)
        tree = ast.parse(textwrap.dedent(source))
        fdef = tree.body[0]
        assert isinstance(fdef, (ast.FunctionDef, ast.AsyncFunctionDef))
        offset = first - 1
        node = StepNode(
            name=name,
            file=file,
            def_line=fdef.lineno + offset,
            doc=inspect.getdoc(func) or "",
            decorators=[
                getattr(d, "name", type(d).__name__) for d in getattr(step_func, "decorators", [])
            ],
            code_hash=hashlib.sha256(source.encode()).hexdigest()[:16],
        )
        args = [a.arg for a in fdef.args.args]
        node.takes_inputs = len(args) >= 2
        self_name = args[0] if args else "self"

        def at(n: ast.AST) -> int:
            return getattr(n, "lineno", fdef.lineno) + offset

        calls = [c for c in _own_nodes(fdef) if _is_next_call(c, self_name)]
        # A return at the top of the body makes self.next() unreachable; one inside an if/for
        # may skip it on one path only, which Metaflow accepts (the task fails if it is taken).
        for ret in (r for r in fdef.body if isinstance(r, ast.Return)):
            if name != "end":
                self._problem(
                    "returns before calling self.next(): every path must end in self.next()",
                    name,
                    at(ret),
                )
        if name == "end":
            if calls:
                self._problem("the end step must not call self.next()", name, at(calls[0]))
            return node
        if not calls:
            self._problem(
                "never calls self.next(): end the step with self.next(self.<step>)",
                name,
                node.def_line,
            )
            return node
        if len(calls) > 1:
            where = ", ".join(str(at(c)) for c in sorted(calls, key=at))
            self._problem(f"calls self.next() more than once (lines {where})", name, at(calls[1]))
            return node
        call = calls[0]
        assert isinstance(call, ast.Call)
        node.next_line = at(call)
        last = fdef.body[-1]
        if not (isinstance(last, ast.Expr) and last.value is call):
            self._problem(
                "self.next() must be the step's last statement, outside any if/for/with block",
                name,
                node.next_line,
            )
        condition = next((kw for kw in call.keywords if kw.arg == "condition"), None)
        if call.args and isinstance(call.args[0], ast.Dict):
            self._parse_switch(node, call, condition, self_name, at)
        elif condition is not None:
            self._problem(
                'condition= goes with a dict of steps: self.next({"a": self.a, "b": self.b}, '
                'condition="artifact")',
                name,
                at(condition.value),
            )
        for arg in [] if node.is_switch else call.args:
            if (
                isinstance(arg, ast.Attribute)
                and isinstance(arg.value, ast.Name)
                and arg.value.id == self_name
            ):
                node.out_funcs.append(arg.attr)
            else:
                self._problem("self.next() takes steps written as self.<step>", name, at(arg))
        for kw in call.keywords:
            if kw.arg == "condition":
                continue
            if kw.arg == "foreach":
                if isinstance(kw.value, ast.Constant) and isinstance(kw.value.value, str):
                    node.foreach_param = kw.value.value
                else:
                    self._problem(
                        'foreach= takes the artifact name as a string: foreach="items"',
                        name,
                        at(kw.value),
                    )
            elif kw.arg != "num_parallel":
                self._problem(f"self.next() has no argument '{kw.arg}'", name, at(kw.value))
        if not node.out_funcs:
            self._problem("self.next() names no step", name, node.next_line)
        if node.foreach_param is not None and len(node.out_funcs) != 1:
            self._problem("a foreach must go to exactly one step", name, node.next_line)
        if node.is_switch and node.foreach_param is not None:
            self._problem("a conditional self.next() cannot also be a foreach", name, node.next_line)
        return node

    def _parse_switch(
        self, node: StepNode, call: ast.Call, condition: ast.keyword | None, self_name: str, at: Any
    ) -> None:
        """self.next({case: self.step, ...}, condition="artifact")."""
        cases = call.args[0]
        assert isinstance(cases, ast.Dict)
        if len(call.args) > 1:
            self._problem("a conditional self.next() takes one dict of steps", node.name, at(call))
        if condition is None or not (
            isinstance(condition.value, ast.Constant) and isinstance(condition.value.value, str)
        ):
            self._problem(
                'a dict of steps in self.next() needs condition="artifact" (the artifact whose '
                "value picks the step)",
                node.name,
                at(call),
            )
            return
        node.condition = condition.value.value
        for key, value in zip(cases.keys, cases.values, strict=True):
            if isinstance(key, ast.Constant) and isinstance(key.value, (str, int, float, bool)):
                case: Any = key.value
            elif (
                isinstance(key, ast.Attribute)
                and isinstance(key.value, ast.Attribute)
                and isinstance(key.value.value, ast.Name)
                and key.value.value.id == self_name
            ):
                case = f"config:{key.value.attr}.{key.attr}"  # a Config's value, known at run start
            else:
                self._problem(
                    "the cases of a conditional self.next() are literals (strings, numbers) or "
                    "self.<config>.<key>",
                    node.name,
                    at(key or value),
                )
                continue
            if not (
                isinstance(value, ast.Attribute)
                and isinstance(value.value, ast.Name)
                and value.value.id == self_name
            ):
                self._problem("self.next() takes steps written as self.<step>", node.name, at(value))
                continue
            node.switch_cases[case] = value.attr
            if value.attr not in node.out_funcs:
                node.out_funcs.append(value.attr)
        if len(node.switch_cases) < 2:
            self._problem(
                "a conditional self.next() needs at least two cases", node.name, node.next_line
            )

    # -- validation ----------------------------------------------------------------------------

    def _validate(self) -> None:
        for required in ("start", "end"):
            if required not in self.nodes:
                self._problem(f"the flow has no '{required}' step: add a @step named {required}")
        for node in self.nodes.values():
            for target in node.out_funcs:
                if target not in self.nodes:
                    self._problem(
                        f"self.next() names '{target}', which is not a step of {self.name}",
                        node.name,
                        node.next_line,
                    )
        if "start" in self.nodes and self.nodes["start"].takes_inputs:
            self._problem("the start step cannot take inputs", "start", self.nodes["start"].def_line)
        if "start" not in self.nodes:
            self.order = sorted(self.nodes)
            return
        for node in self.nodes.values():
            node.out_funcs = [t for t in node.out_funcs if t in self.nodes]
            for target in node.out_funcs:
                self.nodes[target].in_funcs.append(node.name)
        reachable = self._reachable()
        for node in self.nodes.values():
            if node.name not in reachable:
                self._problem("is not reachable from 'start'", node.name, node.def_line)
        self.order = self._topological(reachable)
        if not self.problems:
            self._check_splits()
        self.problems.sort(key=lambda p: (p.file or "", p.line or 0))

    def _reachable(self) -> set[str]:
        seen, todo = set(), ["start"]
        while todo:
            name = todo.pop()
            if name not in seen:
                seen.add(name)
                todo.extend(self.nodes[name].out_funcs)
        return seen

    def _topological(self, reachable: set[str]) -> list[str]:
        """Depth-first from start: the steps in topological order, and any cycle reported."""
        order: list[str] = []
        state: dict[str, int] = {}  # 1 while on the current path, 2 when done
        path: list[str] = []

        def visit(name: str) -> None:
            state[name] = 1
            path.append(name)
            for child in self.nodes[name].out_funcs:
                if state.get(child) == 1 and self.nodes[name].is_switch:
                    # Recursion: a conditional step may go back to itself or an earlier step.
                    self.loop_edges.add((name, child))
                    self.nodes[name].loops_to.append(child)
                elif state.get(child) == 1:
                    loop = path[path.index(child) :]
                    cycle = " -> ".join([*loop, child])
                    self._problem(
                        f"steps form a cycle ({cycle}): a flow must be a DAG",
                        name,
                        self.nodes[name].next_line,
                    )
                elif child not in state:
                    visit(child)
            path.pop()
            state[name] = 2
            order.append(name)

        visit("start")
        return order[::-1]

    def _check_splits(self) -> None:
        joins_of: dict[str, list[str]] = {}
        # Each step's branch path: (split, branch) for every split it is inside of, so that two
        # steps are on the same path only if every enclosing split sent them the same way.
        paths: dict[str, tuple[tuple[str, str], ...]] = {}
        for name in self.order:
            node = self.nodes[name]
            preds = [p for p in node.in_funcs if (p, name) not in self.loop_edges]
            incoming = [self._stack_after(p) for p in preds]
            in_paths = [self._path_after(paths, p, name) for p in preds]
            if name == "start":
                node.split_parents = []
                paths[name] = ()
            elif node.takes_inputs:
                switches = [p for p in preds if self.nodes[p].is_switch]
                if switches:
                    self._problem(
                        f"a conditional step ({', '.join(switches)}) leads straight to this join: "
                        "add a step of its own on that path before the join",
                        name,
                        node.def_line,
                    )
                    continue
                closing = {tuple(s) for s in incoming}
                tops = {s[-1] if s else None for s in incoming}
                if None in tops:
                    self._problem(
                        "takes inputs but no split leads to it: drop the inputs argument",
                        name,
                        node.def_line,
                    )
                    continue
                if len(closing) > 1:
                    detail = ", ".join(
                        f"{p} (split at {s[-1]})" for p, s in zip(preds, incoming, strict=True)
                    )
                    self._problem(f"joins branches of different splits: {detail}", name, node.def_line)
                    continue
                stack = incoming[0]
                if stack[-1] in preds:
                    self._problem(
                        f"follows its split '{stack[-1]}' directly: every branch needs a step of "
                        "its own before the join",
                        name,
                        node.def_line,
                    )
                    continue
                joins_of.setdefault(stack[-1], []).append(name)
                node.split_parents = stack[:-1]
                paths[name] = in_paths[0][:-1]
            else:
                # Several steps may lead here when at most one of them runs: the branches of a
                # conditional step meeting again. Branches of a split all run: they need a join.
                if len(set(in_paths)) > 1:
                    self._problem(
                        f"has several incoming steps ({', '.join(preds)}) but takes no "
                        f"inputs: declare it as def {name}(self, inputs)",
                        name,
                        node.def_line,
                    )
                    continue
                node.split_parents = incoming[0]
                paths[name] = in_paths[0]
            if name == "end" and node.split_parents:
                split = node.split_parents[-1]
                self._problem(
                    f"is reached inside the split at '{split}' that no join closes",
                    name,
                    node.def_line,
                )
        for source, target in sorted(self.loop_edges):
            if source in paths and target in paths and paths[source] != paths[target]:
                self._problem(
                    f"goes back to '{target}' from inside a split: a loop must start and end "
                    "in the same branch",
                    source,
                    self.nodes[source].next_line,
                )
            if self.nodes[target].takes_inputs:
                self._problem(
                    f"goes back to the join '{target}': a loop cannot start at a join",
                    source,
                    self.nodes[source].next_line,
                )
        for node in self.nodes.values():
            if not node.is_split:
                continue
            joins = joins_of.get(node.name, [])
            if len(joins) > 1:
                self._problem(
                    f"its branches are joined by several steps ({', '.join(joins)}): "
                    "every branch of a split must end in the same join",
                    node.name,
                    node.next_line,
                )
            elif joins:
                node.matching_join = joins[0]

    def _path_after(
        self, paths: dict[str, tuple[tuple[str, str], ...]], name: str, child: str
    ) -> tuple[tuple[str, str], ...]:
        path = paths.get(name, ())
        return (*path, (name, child)) if self.nodes[name].is_split else path

    def _stack_after(self, name: str) -> list[str]:
        node = self.nodes[name]
        return [*node.split_parents, name] if node.is_split else node.split_parents


def _own_nodes(fdef: ast.AST) -> list[ast.AST]:
    """The nodes of a function body, not descending into nested functions, lambdas or classes."""
    found: list[ast.AST] = []
    todo = list(ast.iter_child_nodes(fdef))
    while todo:
        n = todo.pop()
        if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda, ast.ClassDef)):
            continue
        found.append(n)
        todo.extend(ast.iter_child_nodes(n))
    return found


def _is_next_call(n: ast.AST, self_name: str) -> bool:
    return (
        isinstance(n, ast.Call)
        and isinstance(n.func, ast.Attribute)
        and n.func.attr == "next"
        and isinstance(n.func.value, ast.Name)
        and n.func.value.id == self_name
    )


def flow_source_file(flow_cls: type) -> str | None:
    """The file that defines the flow class: the one its loader noted, else the file of a function
    in its own body, else its module's, else (last) the file of any of its steps, which may come
    from a base class in another module."""
    noted = flow_cls.__dict__.get("_aflow_source_file")
    if noted:
        return str(noted)
    for value in vars(flow_cls).values():
        code = getattr(inspect.unwrap(value), "__code__", None) if callable(value) else None
        if code is not None:
            return str(code.co_filename)
    module = sys.modules.get(flow_cls.__module__)
    file = getattr(module, "__file__", None)
    if file and getattr(module, flow_cls.__name__, None) is flow_cls:
        return str(file)
    for attr in dir(flow_cls):
        func = getattr(flow_cls, attr, None)
        if callable(func) and is_step(func):
            code = getattr(inspect.unwrap(func), "__code__", None)
            if code is not None:
                return str(code.co_filename)
    return None


def _class_location(flow_cls: type) -> tuple[str, int]:
    file = flow_source_file(flow_cls)
    if file is None:
        return "<unknown>", 1
    try:
        with open(file, encoding="utf-8") as f:
            tree = ast.parse(f.read())
    except (OSError, SyntaxError):
        return file, 1
    for node in ast.walk(tree):
        if isinstance(node, ast.ClassDef) and node.name == flow_cls.__name__:
            return file, node.lineno
    return file, 1


def graph_for(flow_cls: type) -> FlowGraph:
    """The graph of a flow class, built once per process."""
    graph = _GRAPHS.get(flow_cls)
    if graph is None:
        graph = _GRAPHS[flow_cls] = FlowGraph(flow_cls)
    return graph


_GRAPHS: dict[type, FlowGraph] = {}
