"""Numbers read from `AFLOW_*` environment variables, for the settings objects' `from_env()`.

An unset or empty variable gives the default. A value that is not a number, or is below the
minimum, is an AflowException naming the variable and what it takes, not a ValueError from deep
inside a run.
"""

from __future__ import annotations

import os

from aflow.exception import AflowException


def env_number(name: str, default: float, *, minimum: float | None = None) -> float:
    raw = (os.environ.get(name) or "").strip()
    if not raw:
        return default
    try:
        value = float(raw)
    except ValueError:
        raise AflowException(f"{name}={raw!r}: expected a number (default {default:g})") from None
    if minimum is not None and value < minimum:
        raise AflowException(f"{name}={raw!r}: expected a number of at least {minimum:g}")
    return value


def env_int(name: str, default: int, *, minimum: int | None = None) -> int:
    raw = (os.environ.get(name) or "").strip()
    if not raw:
        return default
    try:
        value = int(raw)
    except ValueError:
        raise AflowException(f"{name}={raw!r}: expected a whole number (default {default})") from None
    if minimum is not None and value < minimum:
        raise AflowException(f"{name}={raw!r}: expected a whole number of at least {minimum}")
    return value
