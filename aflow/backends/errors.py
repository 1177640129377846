"""Errors at the backend boundary, as types: what went wrong between the scheduler and the place a
task runs, so callers decide by `except`/`isinstance`, never by comparing class names as strings.

- `BackendUnavailable`: the platform cannot be reached or its machinery died (the warm parent, the
  control plane, lost contact mid-run); nothing about the task itself.
- `JobRefused`: the platform turned the job down (an invalid spec, a quota, a missing permission);
  the message says what to change.
- `PlatformError`: a task was lost to the platform (killed, evicted, out of memory): a failure of the
  attempt, not of the step's code. A backend may raise it from `run()`; the scheduler counts it as a
  failed attempt that `@retry(only_platform_errors=True)` retries.

A task stopped by SIGTERM raises `aflow.exception.TaskTerminated` in its own process; its record says
so, and `TaskRecord.stopped` is the one place that reads that back.
"""

from __future__ import annotations

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
