"""`@step`: what marks a method as a step of a flow, and how the graph, the decorators and the flow
class recognise one. It imports nothing of aflow, so every layer may ask `is_step`.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

F = TypeVar("F", bound=Callable[..., Any])


def step(f: F) -> F:
    """Mark a method as a step of the flow."""
    f.is_step = True  # type: ignore[attr-defined]
    f.name = f.__name__  # type: ignore[attr-defined]
    if not hasattr(f, "decorators"):
        f.decorators = []  # type: ignore[attr-defined]
    return f


def is_step(obj: Any) -> bool:
    return callable(obj) and getattr(obj, "is_step", False) is True
