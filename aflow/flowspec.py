"""The authoring model: `FlowSpec`, `@step`, `self.next`, `merge_artifacts`, `self.input`/`self.index`.

A FlowSpec instance is inert until the task runtime attaches a task context to it (`_aflow_task`);
then attribute reads fall through to the task's inherited artifacts, loaded lazily, and every public
attribute the step sets becomes an artifact. This module knows nothing about stores or processes: it
talks to the context through the small `TaskContext` protocol below.

Instantiating a flow at module level (`if __name__ == "__main__": MyFlow()`) starts the command line,
as in Metaflow, unless aflow itself is loading the file (`loading_flow_file`).
"""

from __future__ import annotations

import contextlib
import functools
import types
from collections.abc import Iterable, Iterator
from typing import Any, NamedTuple, Protocol

from aflow.steps import is_step

_loading_depth = 0


@contextlib.contextmanager
def loading_flow_file() -> Iterator[None]:
    """While active, `MyFlow()` builds an inert instance instead of starting the CLI."""
    global _loading_depth
    _loading_depth += 1
    try:
        yield
    finally:
        _loading_depth -= 1


def loading_depth() -> int:
    return _loading_depth


# Names Metaflow never takes for constants (they are the FlowSpec's own).
_NOT_CONSTANTS = {"cmd", "foreach_stack", "index", "input", "script_name", "name"}


@functools.cache
def flow_constants(flow_cls: type) -> dict[str, Any]:
    """A flow's class-level values, which Metaflow treats as constants: stored as artifacts of
    the run (so the client reads them) and read-only in steps (so every step sees the same)."""
    from aflow.parameters import Parameter

    found: dict[str, Any] = {}
    for var in dir(flow_cls):
        if var.startswith("_") or var in _NOT_CONSTANTS:
            continue
        value = getattr(flow_cls, var)
        skip = (types.MethodType, types.FunctionType, property, type, types.ModuleType, Parameter)
        if isinstance(value, skip) or is_step(value):
            continue
        found[var] = value
    return found


class ForeachFrame(NamedTuple):
    """One enclosing foreach, as Metaflow's `self._foreach_stack` holds it."""

    step: str
    var: str | None
    num_splits: int
    index: int  # type: ignore[assignment]  # Metaflow's field name; shadows tuple.index on purpose
    value: Any


class TaskContext(Protocol):
    """What a flow instance needs from the task that runs it."""

    def load(self, name: str) -> Any: ...
    def record_next(
        self, targets: tuple[Any, ...], foreach: str | None, condition: str | None = None
    ) -> None: ...
    def merge_artifacts(
        self, flow: FlowSpec, inputs: Any, exclude: list[str], include: list[str]
    ) -> None: ...
    def foreach_stack(self) -> list[tuple[int, int, Any]]: ...
    def foreach_frames(self) -> list[tuple[str, int, int, Any]]: ...
    @property
    def input(self) -> Any: ...
    @property
    def index(self) -> int | None: ...


class FlowSpec:
    """Base class of every flow: subclass it and mark methods with `@step`."""

    def __init__(self, use_cli: bool = True) -> None:
        if use_cli and _loading_depth == 0:
            from aflow.cli import run_flow_cli

            run_flow_cli(type(self))

    @property
    def name(self) -> str:
        return type(self).__name__

    def _aflow_context(self) -> TaskContext:
        ctx = self.__dict__.get("_aflow_task")
        if ctx is None:
            raise RuntimeError(
                f"{type(self).__name__} is not running: steps run through `aflow run` or run_flow()"
            )
        task: TaskContext = ctx
        return task

    def _aflow_artifact(self, name: str) -> Any:
        if name in self.__dict__:
            return self.__dict__[name]
        value = self._aflow_context().load(name)
        self.__dict__[name] = value
        return value

    def __getattr__(self, name: str) -> Any:
        # Only reached when normal lookup fails: that is, for artifacts not read yet.
        if name.startswith("__") or name.startswith("_aflow") or "_aflow_task" not in self.__dict__:
            raise AttributeError(f"'{type(self).__name__}' object has no attribute '{name}'")
        return self._aflow_artifact(name)

    def __setattr__(self, name: str, value: Any) -> None:
        if is_step(getattr(type(self), name, None)):
            raise AttributeError(
                f"'{name}' is a step of {type(self).__name__}: an artifact cannot take a step's name"
            )
        flow_cls: type = type(self)  # as `type`: mypy reads type[FlowSpec] as unhashable
        if not name.startswith("_") and name in flow_constants(flow_cls):
            raise AttributeError(
                f"'{name}' is a class-level constant of {type(self).__name__}: it is read-only in "
                "steps (as in Metaflow); store the new value under another name"
            )
        object.__setattr__(self, name, value)

    def next(
        self, *steps: Any, foreach: str | None = None, condition: str | None = None, **_ignored: Any
    ) -> None:
        """Name the step(s) that run after this one; `foreach="attr"` fans out over an iterable;
        `self.next({"a": self.a, "b": self.b}, condition="attr")` goes to one, by attr's value."""
        self._aflow_context().record_next(steps, foreach, condition)

    def merge_artifacts(
        self,
        inputs: Iterable[Any],
        exclude: list[str] | None = None,
        include: list[str] | None = None,
    ) -> None:
        """In a join, take every artifact the inputs agree on (or that this step already set)."""
        self._aflow_context().merge_artifacts(self, inputs, list(exclude or []), list(include or []))

    @property
    def input(self) -> Any:
        """The item of the innermost foreach this task was given."""
        return self._aflow_context().input

    @property
    def index(self) -> int | None:
        """The position of this task in the innermost foreach."""
        return self._aflow_context().index

    def foreach_stack(self) -> list[tuple[int, int, Any]]:
        """(index, num_splits, value) for every enclosing foreach, outermost first."""
        return self._aflow_context().foreach_stack()

    # -- what Metaflow code and decorators read from a running flow --------------------------

    @property
    def _current_step(self) -> str | None:
        from aflow.current import current

        return current.step_name

    @property
    def _graph(self) -> Any:
        """The flow's graph: `self._graph["step"]` has `.type`, `.in_funcs`, `.out_funcs`."""
        from aflow.graph import graph_for

        return graph_for(type(self))

    @property
    def _foreach_stack(self) -> list[ForeachFrame]:
        """Every enclosing foreach, outermost first: step, var, num_splits, index, value."""
        graph = self._graph
        return [
            ForeachFrame(step, graph[step].foreach_param, num_splits, index, value)
            for step, index, num_splits, value in self._aflow_context().foreach_frames()
        ]
