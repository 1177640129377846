"""Conditional steps in a task: checking `self.next({...}, condition=...)` against the source,
and picking the step the condition's value names (Metaflow 2.18's switch)."""

from __future__ import annotations

from typing import Any

from aflow.exception import InvalidNextException
from aflow.graph import StepNode


def check_switch_call(
    node: StepNode, targets: tuple[Any, ...], condition: str | None, where: str
) -> None:
    cases = targets[0] if len(targets) == 1 and isinstance(targets[0], dict) else None
    if not node.is_switch or cases is None or condition != node.condition:
        raise InvalidNextException(
            f"step '{node.name}' called self.next() differently from its source, which says "
            f"{_written(node)} ({where})"
        )
    names = {k: getattr(v, "__name__", repr(v)) for k, v in cases.items()}
    if sorted(set(names.values())) != sorted(node.out_funcs):
        raise InvalidNextException(
            f"step '{node.name}' called self.next() with steps {sorted(set(names.values()))}, but "
            f"its source says {_written(node)} ({where})"
        )


def _written(node: StepNode) -> str:
    if not node.is_switch:
        return f"self.next({', '.join(node.out_funcs)})"
    cases = ", ".join(f"{k!r}: self.{v}" for k, v in node.switch_cases.items())
    return f"self.next({{{cases}}}, condition={node.condition!r})"


def _case_value(case: Any, flow: Any) -> Any:
    """A case as written: a literal, or `config:<attribute>.<key>`, read from the flow's Config
    (an artifact of every task)."""
    if isinstance(case, str) and case.startswith("config:"):
        attr, _, key = case.removeprefix("config:").partition(".")
        config = getattr(flow, attr)
        return config[key] if key in config else getattr(config, key)
    return case


def chosen_step(node: StepNode, flow: Any) -> str:
    """The step the condition's current value picks; an error naming the cases when none does."""
    assert node.condition is not None
    where = f"{node.file}:{node.next_line or node.def_line}"
    try:
        value = getattr(flow, node.condition)
    except AttributeError:
        raise InvalidNextException(
            f"step '{node.name}': its condition names '{node.condition}', but no artifact has "
            f"that name ({where})"
        ) from None
    for case, step in node.switch_cases.items():
        if _case_value(case, flow) == value:
            return step
    cases = ", ".join(repr(_case_value(c, flow)) for c in node.switch_cases)
    raise InvalidNextException(
        f"step '{node.name}': condition '{node.condition}' is {value!r}, which no case names "
        f"(cases: {cases}) ({where})"
    )
