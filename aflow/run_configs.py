"""The configs of the run being started, and what a value that waits for them is.

A context variable holds the values, so two runs started concurrently from one event loop each
evaluate against their own. Parameters and configs both read it; it imports neither.
"""

from __future__ import annotations

import contextvars
from collections.abc import Mapping
from typing import Any

_active_var: contextvars.ContextVar[dict[str, Any]] = contextvars.ContextVar("aflow_configs")


def active_configs() -> dict[str, Any]:
    return _active_var.get({})


def activate(values: Mapping[str, Any]) -> None:
    _active_var.set(dict(values))


class Deferred:
    """A value known only once the run's configs are read (a config expression): calling it gives
    the value. A parameter whose default is one evaluates it when the run resolves its values."""

    def __call__(self, *_ignored: Any) -> Any:
        raise NotImplementedError
