"""Run one task attempt: load its inputs from the store, run the user's step, commit its outputs.

This is what runs inside the task's own process (forked from the local backend's warm parent, or a
fresh interpreter, or a container: `python -m aflow.engine.task_runtime` reads a packed TaskSpec on
stdin). It is synchronous on purpose: the user's step is ordinary code in the main thread, artifacts
load lazily on attribute access, and an `async def` step is awaited in the task's own event loop.

Commit order: every blob first, the task record last. A failed step still writes a record (status
failed, with the user's traceback) so the scheduler and the client can say why.
"""

from __future__ import annotations

import inspect
import os
import platform
import signal
import sys
import time
import traceback
from collections.abc import Iterator
from typing import Any

import msgpack

import aflow
from aflow.cards.runtime import TaskCards
from aflow.client import core as client_core
from aflow.current import current
from aflow.engine.task_settings import ContainerSettings, TaskSettings
from aflow.engine.wire import TaskSpec
from aflow.exception import (
    AflowException,
    CaughtException,
    InvalidNextException,
    MergeArtifactsException,
    MissingInMergeArtifactsException,
    TaskTerminated,
    UnhandledInMergeArtifactsException,
    qualified_name,
)
from aflow.flowspec import FlowSpec, flow_constants
from aflow.frames import Frame
from aflow.graph import StepNode, graph_for
from aflow.stores import artifacts as art
from aflow.stores.base import BlockingObjectStore, Buffer
from aflow.stores.records import (
    TaskRecord,
    TaskStart,
    read_record_sync,
    task_record_key,
    task_start_key,
)

_AFLOW_DIR = os.path.dirname(os.path.abspath(aflow.__file__))
# Frames the user did not write: ours, and asyncio's when an async step is awaited.
_HIDDEN_DIRS = (
    _AFLOW_DIR + os.sep,
    os.path.dirname(os.path.abspath(inspect.__file__)) + os.sep + "asyncio" + os.sep,
)
_IMMUTABLE = (str, bytes, int, float, bool, complex, type(None))


def parent_record_key(spec: TaskSpec, parent: str) -> str:
    step, task_id, attempt = parent.split("/")
    return task_record_key(spec.flow_name, spec.run_id, step, task_id, int(attempt))


def manifest_parents(store: BlockingObjectStore, flow: str, digest: str) -> list[str]:
    blob = art.load_ref_blob(store, flow, {"k": digest}, "the join's list of inputs")
    parents: list[str] = msgpack.unpackb(blob, raw=False)
    return parents


class InputTask:
    """One input of a join: a read-only, lazily loaded view of a parent task's artifacts."""

    def __init__(self, store: BlockingObjectStore, spec: TaskSpec, parent: str) -> None:
        self._store = store
        self._spec = spec
        self._parent = parent
        self._record: TaskRecord | None = None
        self._values: dict[str, Any] = {}

    @property
    def _aflow_record(self) -> TaskRecord:
        if self._record is None:
            key = parent_record_key(self._spec, self._parent)
            self._record = read_record_sync(self._store, TaskRecord, key)
        return self._record

    @property
    def step_name(self) -> str:
        return self._parent.split("/")[0]

    def __getattr__(self, name: str) -> Any:
        if name.startswith("__") or name.startswith("_aflow"):
            raise AttributeError(name)
        if name not in self._values:
            ref = self._aflow_record.artifacts.get(name)
            if ref is None:
                raise AttributeError(f"input from step '{self.step_name}' has no artifact '{name}'")
            what = f"artifact '{name}' of {self._spec.flow_name}/{self._spec.run_id}/{self._parent}"
            blob = art.load_ref_blob(self._store, self._spec.flow_name, ref, what)
            self._values[name] = art.deserialize(blob)
        return self._values[name]

    def _frame_value(self) -> tuple[int | None, Any]:
        stack = self._aflow_record.foreach_stack
        if not stack:
            return None, None
        return stack[-1].index, _frame_item(self._store, self._spec.flow_name, stack[-1])

    @property
    def index(self) -> int | None:
        stack = self._aflow_record.foreach_stack
        return stack[-1].index if stack else None

    @property
    def input(self) -> Any:
        return self._frame_value()[1]

    def foreach_stack(self) -> list[tuple[int, int, Any]]:
        return _foreach_stack(self._store, self._spec.flow_name, self._aflow_record.foreach_stack)

    def __repr__(self) -> str:
        return f"<input {self._parent}>"


class Inputs:
    """A join's `inputs`: iterable, indexable, and `inputs.<step>` in a join of static branches."""

    def __init__(self, tasks: list[InputTask]) -> None:
        self._tasks = tasks

    def __iter__(self) -> Iterator[InputTask]:
        return iter(self._tasks)

    def __len__(self) -> int:
        return len(self._tasks)

    def __getitem__(self, i: int) -> InputTask:
        return self._tasks[i]

    def __getattr__(self, name: str) -> InputTask:
        if name.startswith("_"):
            raise AttributeError(name)
        for t in self._tasks:
            if t.step_name == name:
                return t
        raise AttributeError(f"the join has no input from a step named '{name}'")


def _frame_item(store: BlockingObjectStore, flow: str, frame: Frame) -> Any:
    assert frame.items is not None, "a foreach's split task records its items"
    return art.load_item(store, flow, frame.items, frame.num_splits, frame.index)


def _foreach_stack(
    store: BlockingObjectStore, flow: str, frames: list[Frame]
) -> list[tuple[int, int, Any]]:
    return [(f.index, f.num_splits, _frame_item(store, flow, f)) for f in frames]


class RunningTask:
    """The context a running step's flow instance talks to (see flowspec.TaskContext)."""

    def __init__(
        self, spec: TaskSpec, store: BlockingObjectStore, node: StepNode, flow_cls: type = object
    ) -> None:
        self.spec = spec
        self.store = store
        self.node = node
        self.flow_name = spec.flow_name
        self.inherited: dict[str, art.ArtifactRef] = dict(spec.initial_artifacts)
        self.loaded: dict[str, tuple[Any, Buffer]] = {}  # name -> (value, its blob)
        self.next_call: tuple[list[str], str | None] | None = None
        self.inputs: Inputs | None = None
        parents = spec.parents
        if spec.parents_manifest:
            parents = manifest_parents(store, spec.flow_name, spec.parents_manifest)
        if node.takes_inputs:
            self.inputs = Inputs([InputTask(store, spec, p) for p in parents])
            if self.inputs._tasks:
                first = self.inputs._tasks[0]._aflow_record.artifacts
                # Parameters and class-level constants reach a join as they reach every step.
                passed = [*spec.param_names, *flow_constants(flow_cls)]
                self.inherited.update({n: first[n] for n in passed if n in first})
        elif parents:
            parent = read_record_sync(store, TaskRecord, parent_record_key(spec, parents[0]))
            self.inherited.update(parent.artifacts)
        self._input_cache: tuple[bool, Any] = (False, None)

    # -- TaskContext ---------------------------------------------------------------------------

    def load(self, name: str) -> Any:
        ref = self.inherited.get(name)
        if ref is None:
            hint = (
                " (in a join, read it from inputs or call self.merge_artifacts(inputs))"
                if self.node.takes_inputs
                else ""
            )
            raise AttributeError(
                f"step '{self.node.name}' has no artifact '{name}': no earlier step set it{hint}"
            )
        what = f"artifact '{name}' (read by task {self.spec.pathspec})"
        blob = art.load_ref_blob(self.store, self.flow_name, ref, what)
        value = art.deserialize(blob)
        self.loaded[name] = (value, blob)
        return value

    def record_next(
        self, targets: tuple[Any, ...], foreach: str | None, condition: str | None = None
    ) -> None:
        where = f"{self.node.file}:{self.node.next_line or self.node.def_line}"
        if self.next_call is not None:
            raise InvalidNextException(f"step '{self.node.name}' called self.next() twice ({where})")
        if self.node.is_switch or condition is not None:
            from aflow.engine.switch import check_switch_call

            check_switch_call(self.node, targets, condition, where)
            self.next_call = (list(self.node.out_funcs), None)
            return
        names = [getattr(t, "__name__", repr(t)) for t in targets]
        if names != self.node.out_funcs or foreach != self.node.foreach_param:
            raise InvalidNextException(
                f"step '{self.node.name}' called self.next({', '.join(names)}"
                f"{f', foreach={foreach!r}' if foreach else ''}) but its source says "
                f"self.next({', '.join(self.node.out_funcs)}) ({where})"
            )
        self.next_call = (names, foreach)

    def merge_artifacts(
        self, flow: FlowSpec, inputs: Any, exclude: list[str], include: list[str]
    ) -> None:
        if self.inputs is None:
            raise MergeArtifactsException(
                f"merge_artifacts() works only in a join step; '{self.node.name}' is not one"
            )
        if exclude and include:
            raise MergeArtifactsException("merge_artifacts() takes exclude= or include=, not both")
        seen: dict[str, list[art.ArtifactRef]] = {}
        for inp in inputs:
            for name, ref in inp._aflow_record.artifacts.items():
                seen.setdefault(name, []).append(ref)
        missing = [n for n in include if n not in seen and n not in flow.__dict__]
        if missing:
            raise MissingInMergeArtifactsException(
                f"merge_artifacts(include=...) names artifacts no input has: {', '.join(missing)}",
                missing,
            )
        merged: dict[str, art.ArtifactRef] = {}
        conflicts = []
        for name, refs in seen.items():
            if (include and name not in include) or name in exclude or name in flow.__dict__:
                continue
            if all(art.same_value(refs[0], r) for r in refs[1:]):
                merged[name] = refs[0]
            else:
                conflicts.append(name)
        if conflicts:  # as in Metaflow, nothing is merged unless everything can be
            raise UnhandledInMergeArtifactsException(
                f"step '{self.node.name}': inputs disagree on {', '.join(sorted(conflicts))}; "
                "set them in the join before merge_artifacts(), or pass exclude=[...]",
                sorted(conflicts),
            )
        self.inherited.update(merged)

    @property
    def index(self) -> int | None:
        stack = self.spec.foreach_stack
        return stack[-1].index if stack else None

    @property
    def input(self) -> Any:
        if not self.spec.foreach_stack:
            return None
        if not self._input_cache[0]:
            item = _frame_item(self.store, self.flow_name, self.spec.foreach_stack[-1])
            self._input_cache = (True, item)
        return self._input_cache[1]

    def foreach_stack(self) -> list[tuple[int, int, Any]]:
        return _foreach_stack(self.store, self.flow_name, self.spec.foreach_stack)

    def foreach_frames(self) -> list[tuple[str, int, int, Any]]:
        frames = self.spec.foreach_stack
        values = _foreach_stack(self.store, self.flow_name, frames)
        return [(f[0], f[1], f[2], v[2]) for f, v in zip(frames, values, strict=True)]

    # -- running and committing ------------------------------------------------------------------

    def run_step(self, flow: FlowSpec) -> None:
        method = getattr(flow, self.node.name)
        args = (self.inputs,) if self.inputs is not None else ()

        def call() -> None:
            if inspect.iscoroutinefunction(method):
                import asyncio  # only async steps pay for it

                asyncio.run(method(*args))
            else:
                method(*args)

        user = self.spec.decorators.get("user")
        if user:  # @user_step_decorator / UserStepDecorator around the step
            from aflow.user_decorators import run_wrapped

            run_wrapped(user["wrappers"], self.node.name, flow, self.inputs, call, self.default_next)
        else:
            call()
        if self.node.name != "end" and self.next_call is None:
            raise InvalidNextException(
                f"step '{self.node.name}' returned without calling self.next() "
                f"({self.node.file}:{self.node.def_line})"
            )

    def default_next(self) -> None:
        """The step's self.next() as its source writes it, when a decorator skipped the step."""
        if self.next_call is None:
            self.next_call = (list(self.node.out_funcs), self.node.foreach_param)

    def catch(self, flow: FlowSpec, caught: CaughtException, settings: dict[str, Any]) -> None:
        """@catch: the step's failure becomes data and the flow goes on, as if self.next() was
        called; what the step set before it failed is kept (Metaflow does the same, in the same
        attempt)."""
        if settings.get("print_exception", True):
            shown = (caught.traceback or f"{caught.type}: {caught.exception}").rstrip("\n")
            print(f"@catch: step '{self.node.name}' failed, the flow goes on:\n{shown}", file=sys.stderr)
        if settings.get("var"):
            setattr(flow, settings["var"], caught)
        self.next_call = (list(self.node.out_funcs), self.node.foreach_param)

    def run_fallback(self, flow: FlowSpec) -> None:
        """@catch after an attempt that left no record of its own (the process was lost)."""
        fallback = self.spec.fallback or {}
        error = fallback.get("error", {})
        message = error.get("message", "")
        kind, _, text = message.partition(": ") if ": " in message else ("", "", message)
        caught = CaughtException(text, error.get("class") or kind, error.get("traceback") or None)
        caught.step = self.node.name
        self.catch(flow, caught, fallback)

    def outputs(self, flow: FlowSpec) -> dict[str, art.ArtifactRef]:
        refs = dict(self.inherited)
        if self.node.name == "start":
            refs.update(self._constants(type(flow)))
        skip = set(self.spec.param_names)
        for name, value in flow.__dict__.items():
            if name == "_aflow_task" or name in skip:
                continue
            prior = self.loaded.get(name)
            if (
                prior is not None
                and prior[0] is value
                and (isinstance(value, _IMMUTABLE) or art.unchanged_since_load(value, prior[1]))
            ):
                continue  # read and left alone: its stored bytes are still right
            what = f"artifact '{name}' of task {self.spec.pathspec}"
            refs[name] = art.save_blob(self.store, self.flow_name, art.serialize(value, name), what)
        return refs

    def _constants(self, flow_cls: type) -> dict[str, art.ArtifactRef]:
        """The flow's class-level constants, stored once by the start step as Metaflow does."""
        refs = {}
        for name, value in flow_constants(flow_cls).items():
            try:
                refs[name] = art.save_blob(self.store, self.flow_name, art.serialize(value, name))
            except Exception as e:  # not data (a lock, a client): a class attribute, not an artifact
                print(f"class attribute '{name}' is not stored as an artifact: {e}", file=sys.stderr)
        return refs

    def split(self, flow: FlowSpec) -> tuple[int, str] | None:
        param = self.node.foreach_param
        if param is None:
            return None
        where = f"{self.node.file}:{self.node.next_line}"
        try:
            values = getattr(flow, param)
        except AttributeError:
            raise InvalidNextException(
                f"step '{self.node.name}' fans out over '{param}', but no artifact has that name "
                f"({where})"
            ) from None
        try:
            items = iter(values)
        except TypeError:
            raise InvalidNextException(
                f"step '{self.node.name}' fans out over '{param}', which is not iterable "
                f"(it is {type(values).__name__} {values!r:.60}) ({where})"
            ) from None
        parts, digest, count = art.serialize_items(items, param)
        if count == 0:
            raise InvalidNextException(
                f"step '{self.node.name}' fans out over '{param}', which is empty: a foreach "
                f"needs at least one item ({where})"
            )
        size = sum(memoryview(p).nbytes for p in parts)
        what = f"the foreach items '{param}' of task {self.spec.pathspec}"
        art.put_blob(self.store, art.blob_key(self.flow_name, digest), parts, digest, size, what)
        return count, digest


def user_traceback(e: BaseException) -> str:
    """The exception's traceback without aflow's own frames: what the user needs to see."""
    te = traceback.TracebackException.from_exception(e)
    te.stack = traceback.StackSummary.from_list(
        [f for f in te.stack if not f.filename.startswith(_HIDDEN_DIRS)]
    )
    if isinstance(e, AflowException):
        te.stack = traceback.StackSummary.from_list(te.stack[-1:])
    return "".join(te.format())


def _terminated(signum: int, frame: Any) -> None:
    # Once only: a second SIGTERM (the process group's, or the scheduler's after a timeout) must
    # not interrupt the clean-up the first one started; SIGKILL after the grace period still ends it.
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    raise TaskTerminated("the task was stopped (SIGTERM): its run was cancelled or failed")


def _time_step(spec: TaskSpec) -> None:
    """@timeout, counted by the task itself from when its step starts (in a container, its wait in
    the platform's queue is not the step's time). The step sees a TimeoutException where it is,
    so @catch can keep what it set so far; the scheduler only stops a local task that ignores it."""
    settings = spec.decorators.get("timeout")
    if not settings or spec.fallback is not None:
        return
    from aflow.decorators import TimeoutDecorator
    from aflow.exception import TimeoutException

    limit = TimeoutDecorator(**settings).seconds_total()

    def expired(signum: int, frame: Any) -> None:
        raise TimeoutException(f"the step ran longer than {limit:g} s (@timeout)")

    signal.signal(signal.SIGALRM, expired)
    signal.setitimer(signal.ITIMER_REAL, limit)


def _catching(spec: TaskSpec) -> dict[str, Any] | None:
    """@catch's settings when this attempt's failure is to be caught: its last attempt (or any,
    when @retry retries only platform errors, which a raised exception is not)."""
    settings = spec.decorators.get("catch")
    if settings is None or spec.fallback is not None:
        return None
    retry = spec.decorators.get("retry")
    if retry is None or retry.get("only_platform_errors") or spec.attempt >= retry["times"]:
        return settings
    return None


def error_dict(e: BaseException, shown: str) -> dict[str, str]:
    """A failure as a record keeps it: `type` is the class name, `class` the qualified one."""
    return {"type": type(e).__name__, "class": qualified_name(type(e)), "message": str(e),
            "traceback": shown}  # fmt: skip


def _mark_start(store: BlockingObjectStore, record: TaskRecord) -> None:
    """The attempt's start marker (records.TaskStart): one PUT, never read back here. Viewers lose
    their early look at the task if it fails; the task goes on (its record is what counts)."""
    key = task_start_key(record.flow, record.run_id, record.step, record.task_id, record.attempt)
    try:
        store.put(key, [TaskStart.of(record).pack()])
    except Exception as e:
        print(f"aflow: could not save the task's start marker {key}: {e}", file=sys.stderr)


def run_task(spec: TaskSpec, store: BlockingObjectStore, flow_cls: type[FlowSpec]) -> int:
    """Run one attempt; returns the process exit code (0 when the record says done)."""
    signal.signal(signal.SIGTERM, _terminated)
    started = time.time()
    settings = TaskSettings.from_env()
    record = TaskRecord.for_spec(
        spec,
        started_at=started,
        pid=os.getpid(),
        backend=settings.backend,
        job_id=settings.job_id,
        image=settings.image,
        env_key=(spec.environment or {}).get("key"),
        python_version=platform.python_version(),
    )
    current._set(
        flow_name=spec.flow_name,
        run_id=spec.run_id,
        step_name=spec.step,
        task_id=spec.task_id,
        retry_count=spec.attempt,
        username=client_core.current_user(),
        namespace=f"user:{client_core.current_user()}" if client_core.current_user() else None,
        tags=list(spec.tags),
        origin_run_id=spec.origin_run_id,
        parameter_names=list(spec.param_names),
        tempdir=settings.tempdir,
        **spec.current,
    )
    key = task_record_key(spec.flow_name, spec.run_id, spec.step, spec.task_id, spec.attempt)
    # `Flow(...)`/`Run(...)` in a step read the run's own store, not the current directory's.
    client_core.use_store(spec.datastore, spec.store_root)
    cards = TaskCards.start(spec, store, flow_cls)  # current.card; None when the step has no @card
    try:
        _mark_start(store, record)
        node = graph_for(flow_cls)[spec.step]
        environment = spec.decorators.get("environment")
        if environment:
            os.environ.update({str(k): str(v) for k, v in environment["vars"].items()})
        if "secrets" in spec.decorators:  # this process's environment only; never stored
            from aflow.secret_providers import secret_environment

            os.environ.update(secret_environment(spec.decorators["secrets"], spec.step))
        task = RunningTask(spec, store, node, flow_cls)
        flow = flow_cls.__new__(flow_cls)
        flow.__dict__["_aflow_task"] = task
        catching = _catching(spec)
        if spec.fallback is not None:
            task.run_fallback(flow)
        else:
            _time_step(spec)
            try:
                task.run_step(flow)
            except Exception as e:
                if catching is None:
                    raise
                signal.setitimer(signal.ITIMER_REAL, 0)
                shown = user_traceback(e)
                task.catch(flow, CaughtException.of(e, shown, spec.step), catching)
                record.error = {**error_dict(e, shown), "caught": "catch"}
            else:
                if catching is not None and catching.get("var"):
                    setattr(flow, catching["var"], None)  # success: the idiom `if not i.x`
            finally:
                signal.setitimer(signal.ITIMER_REAL, 0)  # committing the outputs is not timed
        split = task.split(flow)
        record.artifacts = task.outputs(flow)
        record.next_steps = list(node.out_funcs)
        if node.is_switch:  # the one step the condition picks
            from aflow.engine.switch import chosen_step

            record.next_steps = [chosen_step(node, flow)]
        if split:
            record.num_splits, record.split_digest = split
        record.finished_at = time.time()
        if cards is not None:
            cards.finish(flow, record)  # never raises: a card that fails shows its error instead
        store.put(key, [record.pack()])
        return 0
    except BaseException as e:
        shown = user_traceback(e)
        sys.stdout.flush()
        print(f"Step '{spec.step}' failed ({spec.pathspec}):\n{shown}", file=sys.stderr, end="")
        sys.stderr.flush()
        record.status = "stopped" if isinstance(e, TaskTerminated) else "failed"
        record.finished_at = time.time()
        record.error = error_dict(e, shown)
        try:
            store.put(key, [record.pack()])
        except Exception as store_error:
            print(f"could not save the failure record: {store_error}", file=sys.stderr)
            return 2
        return 1


def main() -> int:
    """`python -m aflow.engine.task_runtime`: a packed TaskSpec on stdin; the fresh-process path.

    With `--remote` (a container, after engine/bootstrap.py), the spec is one of a list in the
    store, picked by the index the platform gives an array job's child."""
    from aflow.engine.flow_loader import import_flow
    from aflow.stores.factory import open_blocking_store

    remote = "--remote" in sys.argv[1:]
    container = None
    if remote:
        # Before anything slow: as a container's PID 1, a SIGTERM without a handler is ignored.
        # The bootstrap blocked it across its exec: one sent meanwhile arrives now.
        signal.signal(signal.SIGTERM, _terminated)
        try:
            signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGTERM})
        except TaskTerminated as e:
            print(f"[aflow] {e}", file=sys.stderr)
            return 128 + signal.SIGTERM
        container = ContainerSettings.from_env()
        store = open_blocking_store(container.datastore, container.datastore_root)
        spec = remote_spec(store, container)
    else:
        spec = TaskSpec.unpack(sys.stdin.buffer.read())
        store = open_blocking_store(spec.datastore, spec.store_root)
    keeper = None
    if container is not None and container.save_output:
        from aflow.engine.remote_output import OutputKeeper, output_key

        key = output_key(spec.flow_name, spec.run_id, spec.step, spec.task_id, spec.attempt)
        keeper = OutputKeeper(store, key, container.task_count, container.boot_notes)
    try:
        flow_cls = import_flow(
            spec.flow_name, spec.flow_module, spec.flow_file, spec.sys_path, by_file=remote
        )
        code = run_task(spec, store, flow_cls)
        # A failure the record tells (the step raised) is not the platform's business: an exit
        # code other than 0 would make a Kubernetes Indexed Job stop its other tasks.
        recorded_ok = container is not None and container.recorded_failure_exits_zero
        return 0 if recorded_ok and code == 1 else code
    finally:
        if keeper is not None:
            keeper.close()  # the task's output reaches the store before the job ends
        store.close()


def remote_spec(store: BlockingObjectStore, container: ContainerSettings) -> TaskSpec:
    """This container's TaskSpec, with paths into the unpacked code package: only its own spec is
    read, however many the job has."""
    from aflow.backends.launch import read_spec

    key = art.blob_key(container.flow_name, container.task_specs)
    spec = TaskSpec.unpack(read_spec(store, key, container.index, container.task_count))
    spec.flow_file = os.path.join(container.code_dir, spec.flow_file)
    spec.sys_path = [container.code_dir]
    return spec


if __name__ == "__main__":
    code = main()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)
