"""Exceptions a user can cause, each with a message that says what to fix.

Names follow Metaflow's (`MetaflowException` and friends are aliases) so a flow that imports them keeps
working after its import line changes. Internal errors are ordinary Python exceptions and are shown
with a traceback only under `--debug`.
"""

from __future__ import annotations

from dataclasses import dataclass


class AflowException(Exception):
    """Base of every error aflow raises on purpose: its message is meant for the user."""

    headline = "aflow error"


@dataclass(frozen=True)
class Problem:
    """One thing wrong in a flow definition, located in the user's source."""

    message: str
    step: str | None = None
    file: str | None = None
    line: int | None = None

    def __str__(self) -> str:
        where = f"{self.file}:{self.line}: " if self.file and self.line else ""
        what = f"step '{self.step}': " if self.step else ""
        return f"{where}{what}{self.message}"


class FlowDefinitionError(AflowException):
    """The flow's graph is invalid; raised before anything runs (`aflow check`)."""

    headline = "invalid flow"

    def __init__(self, problems: list[Problem]) -> None:
        self.problems = problems
        super().__init__("\n".join(str(p) for p in problems))


class InvalidNextException(AflowException):
    headline = "invalid self.next() transition"


class ParameterError(AflowException):
    headline = "invalid parameter"


class MergeArtifactsException(AflowException):
    headline = "cannot merge artifacts"

    def __init__(self, msg: str, unhandled: list[str] | None = None) -> None:
        self.artifact_names = unhandled or []
        super().__init__(msg)


class UnhandledInMergeArtifactsException(MergeArtifactsException):
    headline = "conflicting artifacts in merge_artifacts"


class MissingInMergeArtifactsException(MergeArtifactsException):
    headline = "artifacts named in merge_artifacts are missing"


class ArtifactError(AflowException):
    headline = "artifact error"


class DataStoreError(AflowException):
    headline = "datastore error"


class DamagedData(DataStoreError):
    """A record or blob in the store is not what was written (truncated, altered, unreadable).

    `path` is the file or object; the message says what it belongs to and what to do."""

    headline = "damaged data in the datastore"

    def __init__(self, message: str, path: str = "", reason: str = "") -> None:
        self.path = path
        self.reason = reason
        super().__init__(message)


class AflowNotFound(AflowException):
    headline = "object not found"


class TaskFailed(AflowException):
    """A task ended without committing a successful record; carries what the store knows of why."""

    headline = "task failed"

    def __init__(self, pathspec: str, message: str, traceback: str | None = None) -> None:
        self.pathspec = pathspec
        self.traceback = traceback
        super().__init__(f"{pathspec}: {message}")


class NamespaceMismatch(AflowException):
    """Metaflow's MetaflowNamespaceMismatch: the object exists but is outside the current namespace."""

    headline = "not in the current namespace"


class StepNotFound(AflowNotFound, KeyError):
    """`run["nope"]`: a KeyError, as in Metaflow, whose message names the steps there are."""

    headline = "no such step"

    def __str__(self) -> str:
        return str(self.args[0]) if self.args else ""


class TaskNotFound(AflowNotFound, KeyError):
    headline = "no such task"

    def __str__(self) -> str:
        return str(self.args[0]) if self.args else ""


# Metaflow's names, for flows that import them.
MetaflowException = AflowException
MetaflowNotFound = AflowNotFound
MetaflowNamespaceMismatch = NamespaceMismatch


class CaughtException:
    """What `@catch(var="x")` stores in `self.x` when the step failed: the error, as data.

    Not an Exception subclass on purpose: it is an artifact to inspect (`.type`, `.message`,
    `.traceback`), not something to raise by accident.
    """

    def __init__(self, step: str, type: str, message: str, traceback: str) -> None:
        self.step = step
        self.type = type
        self.message = message
        self.traceback = traceback

    def __str__(self) -> str:
        return f"{self.type}: {self.message}" if self.type else self.message

    def __repr__(self) -> str:
        return f"CaughtException(step={self.step!r}, {self})"


def first_error(error: BaseException) -> BaseException:
    """What a task group's exception group is really about: its first leaf that is not a
    cancellation (siblings cancelled because of it come second), else its first leaf.

    Anything that is not a group is returned as it is.
    """
    import asyncio

    leaves: list[BaseException] = []
    todo = [error]
    while todo:
        e = todo.pop(0)
        if isinstance(e, BaseExceptionGroup):
            todo[:0] = list(e.exceptions)
        else:
            leaves.append(e)
    for leaf in leaves:
        if not isinstance(leaf, asyncio.CancelledError):
            return leaf
    return leaves[0] if leaves else error


class TimeoutException(AflowException):
    """A step ran longer than its @timeout (raised inside a remote task, which times itself)."""
