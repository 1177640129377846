"""Errors at the backend boundary, as types: what went wrong between the scheduler and the place a
task runs, so callers decide by `except`/`isinstance`, never by comparing class names as strings.

- `BackendUnavailable`: the platform cannot be reached or its machinery died (the warm parent, the
  control plane, lost contact mid-run); nothing about the task itself.
- `JobRefused`: the platform turned the job down (an invalid spec, a quota, a missing permission);
  the message says what to change.
- `PlatformError`: a task was lost to the platform (killed, evicted, out of memory): a failure of the
  attempt, not of the step's code. A backend may raise it from `run()`; the scheduler counts it as a
  failed attempt that `@retry(only_platform_errors=True)` retries.
- `TaskTerminated`: raised inside a task process by SIGTERM (its run is stopping), so `finally` blocks
  run; a BaseException, so a step's `except Exception` does not swallow it.

A failure crosses from the task's process to the scheduler as its record's `error["type"]`, a name:
`is_platform_failure` is the one place that reads it.
"""

from __future__ import annotations

from collections.abc import Mapping

from aflow.exception import AflowException


class BackendError(AflowException):
    """A backend could not run a task; the message says why and, where it can, what to fix."""

    headline = "backend error"


class BackendUnavailable(BackendError):
    headline = "backend unavailable"


class JobRefused(BackendError):
    headline = "job refused"


class PlatformError(BackendError):
    """A task attempt lost to the platform, not to its own code (retried by only_platform_errors)."""

    headline = "task lost to the platform"


class TaskTerminated(BaseException):
    """SIGTERM arrived in a task process: the run is being stopped. Raised so that `finally` blocks
    (ours, which remove temporary files, and the user's) run before the process exits."""


_PLATFORM_TYPES = frozenset({TaskTerminated.__name__})


def is_platform_failure(error: Mapping[str, str] | None) -> bool:
    """Whether a task record's error (`{"type", "message", "traceback"}`) was the platform's doing
    (the task was stopped or lost) rather than an exception of the step's own code."""
    return error is not None and error.get("type") in _PLATFORM_TYPES
