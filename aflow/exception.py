"""Exceptions a user can cause, each with a message that says what to fix.

Names follow Metaflow's (`MetaflowException` and friends are aliases) so a flow that imports them keeps
working after its import line changes. Internal errors are ordinary Python exceptions and are shown
with a traceback only under `--debug`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any


class AflowException(Exception):
    """Base of every error aflow raises on purpose: its message is meant for the user.

    Takes Metaflow's MetaflowException arguments too (`msg`, `lineno`, `source_file`) and keeps the
    message in `.message`, for flows that raise or inspect it as they did with Metaflow.
    """

    headline = "aflow error"

    def __init__(self, msg: str = "", lineno: int | None = None, source_file: str | None = None) -> None:
        self.message = msg
        self.line_no = lineno
        self.source_file = source_file
        where = f"{source_file}:{lineno}: " if source_file and lineno else ""
        super().__init__(f"{where}{msg}" if where else msg)


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


class DamagedRecordWarning(UserWarning):
    """A reader skipped a damaged record (or resume redid a task whose data is damaged or missing)
    and went on; the message names the file."""


class AflowNotFound(AflowException):
    headline = "object not found"


class TaskFailedError(AflowException):
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


class ExternalCommandFailed(AflowException):
    headline = "external command failed"


class ParameterFieldFailed(AflowException):
    headline = "parameter field failed"

    def __init__(self, name: str, field: str) -> None:
        super().__init__(f"parameter '{name}': evaluating its {field} failed")


class ParameterFieldTypeMismatch(AflowException):
    headline = "parameter field with a mismatching type"


class InvalidPathspec(AflowException):
    headline = "invalid pathspec"


class InternalError(AflowException):
    headline = "internal error"


class TaggingError(AflowException):
    headline = "tagging error"


class UnknownUser(AflowException):
    headline = "unknown user"

    def __init__(self, msg: str = "") -> None:
        super().__init__(msg or "cannot tell who you are: set AFLOW_USER (or USER)")


class InvalidDecoratorAttribute(AflowException):
    headline = "unknown decorator attribute"

    def __init__(self, deconame: str, attr: str, defaults: dict[str, object]) -> None:
        super().__init__(
            f"@{deconame} has no option {attr} (its options: {', '.join(defaults) or 'none'})"
        )


class CommandException(AflowException):
    headline = "invalid command"


class DataMissing(AflowException):
    headline = "data missing"


# Metaflow's names, for flows that import them from `metaflow.exception`.
MetaflowException = AflowException
MetaflowNotFound = AflowNotFound
MetaflowNamespaceMismatch = NamespaceMismatch
MetaflowInvalidPathspec = InvalidPathspec
MetaflowInternalError = InternalError
MetaflowTaggingError = TaggingError
MetaflowUnknownUser = UnknownUser
MetaflowDataMissing = DataMissing


def qualified_name(kind: type) -> str:
    """`module.Class`, as Metaflow names an exception's type (`__main__.Boom`, `builtins.KeyError`)."""
    return f"{kind.__module__}.{kind.__qualname__}"


class CaughtException(Exception):
    """An exception as data: what `@catch(var="x")` stores in `self.x` and `task.exception` returns.

    Metaflow's MetaflowExceptionWrapper: `.exception` is the message, `.type` the module-qualified
    class name, `.traceback` (also `.stacktrace`) the user's traceback. It holds only strings, so it
    unpickles anywhere, whatever the original exception class was; `str()` is the traceback.
    """

    def __init__(
        self, exception: str = "", type: str = "", traceback: str | None = None, step: str | None = None
    ) -> None:
        super().__init__(exception)
        self.exception = exception
        self.type = type
        self.traceback = traceback
        self.step = step

    @classmethod
    def of(cls, error: BaseException, traceback: str | None, step: str | None = None) -> CaughtException:
        return cls(str(error), qualified_name(type(error)), traceback, step)

    @property
    def stacktrace(self) -> str | None:
        return self.traceback

    @property
    def message(self) -> str:
        return self.exception

    def __reduce__(self) -> tuple[object, ...]:
        return (CaughtException, (), self.__dict__)

    def __setstate__(self, state: dict[str, Any] | None) -> None:
        self.__dict__.update(state or {})
        self.args = (self.exception,)

    def __str__(self) -> str:
        return self.traceback or f"[no stacktrace]\n{self.type}: {self.exception}"

    def __repr__(self) -> str:
        return f"CaughtException({self.type}: {self.exception})"


MetaflowExceptionWrapper = CaughtException


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


class TaskKilled(AflowException):
    """A task's process ended without a record of its own (killed by a signal, say a segfault)."""


class TaskTerminated(BaseException):
    """SIGTERM arrived in a task process: its run is being stopped. Raised so that `finally` blocks
    (ours, which remove temporary files, and the user's) run before the process exits; a
    BaseException, so a step's `except Exception` does not swallow it."""
