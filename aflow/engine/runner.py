"""Starting a run: `run_flow()` and `start_flow()`, the async API the CLI also stands on.

Everything a user can get wrong (the graph, the parameters, the datastore) is checked before the run
record is written or any task starts. The run record is written when the run starts and again when it
ends, whatever the ending: done, failed, or cancelled (the last write is shielded from cancellation).
"""

from __future__ import annotations

import contextlib
import os
import socket
import time
import traceback
from collections.abc import AsyncIterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import anyio
from anyio.streams.memory import MemoryObjectReceiveStream

from aflow import flowspec
from aflow.backends.base import Backend
from aflow.backends.local import LocalBackend, settle_prestarted
from aflow.backends.remote import RemoteContext
from aflow.backends.router import StepRouter, check_remote, remote_steps
from aflow.client import Run
from aflow.client.core import AsyncRun, current_user
from aflow.client.tags import fold_changed_tags
from aflow.config import read_configs
from aflow.decorators import step_decorators
from aflow.engine import environments
from aflow.engine.events import Event, EventBus, RunFinished, RunStarted
from aflow.engine.flow_loader import FlowRef
from aflow.engine.resume import ResumeOrigin, origin_configs, origin_params
from aflow.engine.scheduler import RunContext, Scheduler
from aflow.exception import AflowException, ParameterError, TaskFailedError, first_error
from aflow.flowspec import FlowSpec
from aflow.graph import FlowGraph, graph_for
from aflow.mutators import apply_mutators
from aflow.parameters import IncludeFile, flow_parameters
from aflow.projects import project_info, project_tags
from aflow.run_configs import activate
from aflow.stores import artifacts as art
from aflow.stores.base import ObjectStore
from aflow.stores.factory import REMOTE, default_datastore, open_store
from aflow.stores.records import HEARTBEAT_SECONDS, RunRecord, run_record_key
from aflow.stores.values import save_values
from aflow.triggers import recorded_triggers

DEFAULT_MAX_WORKERS = 16


def resolve_params(flow_cls: type[FlowSpec], given: Mapping[str, Any]) -> dict[str, Any]:
    """Every parameter's value for a run; unknown names and missing required ones are errors."""
    params = flow_parameters(flow_cls)
    known = {p.name for p in params.values()} | set(params)
    unknown = [k for k in given if k not in known and k.replace("-", "_") not in known]
    if unknown:
        have = ", ".join(sorted(p.name for p in params.values())) or "none"
        raise ParameterError(
            f"{flow_cls.__name__} has no parameter {', '.join(map(repr, unknown))} "
            f"(its parameters: {have})"
        )
    name = flow_cls.__name__
    return {attr: p.resolve(dict(given), p.context(name)) for attr, p in params.items()}


def new_run_id() -> str:
    return str(time.time_ns() // 1000)


class RunningFlow:
    """A run in progress: read `events()` as it goes, `await wait()` for the finished Run."""

    def __init__(self, run_id: str, flow: str, events: MemoryObjectReceiveStream[Event] | None) -> None:
        self.run_id = run_id
        self.flow = flow
        self._events = events
        self._done = anyio.Event()
        self._result: AsyncRun | None = None

    def events(self) -> MemoryObjectReceiveStream[Event]:
        """Every event of the run, in order; the stream ends after RunFinished."""
        if self._events is None:
            raise AflowException("this run was started with events=False")
        return self._events

    async def wait(self) -> Run:
        """The finished run (what run_flow() returns)."""
        await self._done.wait()
        assert self._result is not None
        run: Run = Run._of(self._result)
        return run


@dataclass
class RunPlan:
    """Everything a run needs, checked before anything is written or started."""

    graph: FlowGraph
    ref: FlowRef
    values: dict[str, Any]
    store: ObjectStore
    datastore: str
    max_workers: int
    decorators: dict[str, dict[str, dict[str, Any]]]
    tags: list[str]
    max_num_splits: int | None = None
    origin: ResumeOrigin | None = None
    environments: dict[str, dict[str, str]] | None = None
    project: dict[str, Any] | None = None  # what `current` says of @project
    triggers: dict[str, Any] | None = None  # @schedule / @trigger / @trigger_on_finish
    backend: Backend | None = None  # the caller's, for every step; else the decorators decide
    owns_store: bool = True  # opened for this run, so closed with it


@contextlib.asynccontextmanager
async def start_flow(
    flow_cls: type[FlowSpec],
    params: Mapping[str, Any] | None = None,
    *,
    max_workers: int = DEFAULT_MAX_WORKERS,
    datastore: str | None = None,
    datastore_root: str | None = None,
    run_id: str | None = None,
    events: bool = True,
    with_decorators: Sequence[str] = (),
    tags: Sequence[str] = (),
    resume: bool = False,
    origin_run_id: str | None = None,
    resume_step: str | None = None,
    max_num_splits: int | None = None,
    config_files: Mapping[str, str] | None = None,
    config_values: Mapping[str, Any] | None = None,
    branch: str | None = None,
    production: bool = False,
    clone_changed: bool = False,
    backend: Backend | None = None,
    store: ObjectStore | None = None,
) -> AsyncIterator[RunningFlow]:
    """Start a run in the background of the caller's event loop.

    Leaving the block waits for the run to end; cancelling the caller cancels the run. With
    `events=False` nothing is kept for `events()` (what run_flow() does). `with_decorators` takes
    `--with` specs ("retry:times=2"). `resume=True` reuses what `origin_run_id` (default: the latest
    run) finished, rerunning from `resume_step` if given; parameters are the origin run's.
    `config_files` / `config_values` give the flow's Configs ({name: path} / {name: JSON or dict}).
    `branch` / `production` place a @project flow's run on a branch (default: `user.<you>`).
    `clone_changed=True` makes a resume reuse steps whose code changed, as Metaflow's does.

    `store` runs it on that store instead of opening `datastore`/`datastore_root` (the caller keeps
    it open); `backend` runs every step's tasks there instead of where its decorators say (entered
    for the length of the run). Tests pass `MemoryStore()` and a `MockBackend` on it.
    """
    if flowspec.loading_depth() > 0:
        raise AflowException(
            "run_flow()/start_flow() was called while aflow was importing the flow's module in a "
            'task process: put the call under `if __name__ == "__main__":` in that file'
        )
    graph = graph_for(flow_cls).check()
    if max_workers < 1:
        raise ParameterError("--max-workers must be at least 1")
    owned = store is None
    if store is None:
        datastore = datastore or default_datastore()
        store = open_store(datastore, datastore_root)
    else:
        datastore = datastore or _kind_of(store)
    try:
        await store.check()  # no bucket, no credentials: say so before anything is written
        origin = None
        if resume:
            if params or config_files or config_values:
                raise ParameterError(
                    "a resumed run keeps its origin run's parameters and configs: pass none"
                )
            origin = await ResumeOrigin.load(
                store, graph, origin_run_id, resume_step, clone_changed
            )
            configs = await origin_configs(store, origin, flow_cls)
        else:  # configs first: decorators and parameter defaults may use them
            configs = await anyio.to_thread.run_sync(
                read_configs, flow_cls, config_files, config_values
            )
        activate(configs)
        apply_mutators(flow_cls)  # after the configs they may read, before decorators are read
        plan = RunPlan(
            graph=graph,
            ref=FlowRef.of(flow_cls),
            values={},
            store=store,
            datastore=datastore,
            max_workers=max_workers,
            decorators=step_decorators(flow_cls, graph.order, with_decorators),
            tags=list(tags),
            max_num_splits=max_num_splits,
            project=project_info(flow_cls, branch, production, current_user()),
            triggers=recorded_triggers(flow_cls),
            backend=backend,
            owns_store=owned,
        )
        if backend is None:
            check_remote(plan.decorators, datastore, graph)
        plan.environments = await environments.prepare(plan.decorators, datastore, store)
        if origin is not None:
            plan.origin = origin
        else:  # in a thread: an IncludeFile parameter reads its file
            given = {**(params or {}), **{n: v for n, v in configs.items() if v is not None}}
            if any(isinstance(p, IncludeFile) for p in flow_parameters(flow_cls).values()):
                # Not while a launcher imports the flow: a module may (re)write its own file.
                await anyio.to_thread.run_sync(settle_prestarted, plan.ref.file)
            plan.values = await anyio.to_thread.run_sync(resolve_params, flow_cls, given)
    except BaseException:
        if owned:
            with anyio.CancelScope(shield=True), contextlib.suppress(Exception):
                await store.aclose()  # refused before it started: let go of the cloud client
        raise
    bus = EventBus()
    handle = RunningFlow(run_id or new_run_id(), flow_cls.__name__, bus.subscribe() if events else None)
    try:
        async with anyio.create_task_group() as tg:
            tg.start_soon(_drive, handle, plan, bus)
            yield handle
            await handle._done.wait()
    except BaseExceptionGroup as group:
        # The caller's own exception (or cancellation) comes out as itself, not in a group.
        raise first_error(group) from None


async def run_flow(
    flow_cls: type[FlowSpec], params: Mapping[str, Any] | None = None, **options: Any
) -> Run:
    """Run a flow to its end inside the caller's event loop and return its `Run`.

    Takes start_flow()'s options (max_workers, datastore_root, with_decorators, tags, ...).
    """
    async with start_flow(flow_cls, params, events=False, **options) as running:
        pass
    return await running.wait()


async def resume_flow(
    flow_cls: type[FlowSpec],
    origin_run_id: str | None = None,
    step: str | None = None,
    **options: Any,
) -> Run:
    """Resume a run (the latest by default) from its failure, or from `step`; return the new Run."""
    async with start_flow(
        flow_cls,
        events=False,
        resume=True,
        origin_run_id=origin_run_id,
        resume_step=step,
        **options,
    ) as running:
        pass
    return await running.wait()


async def _save_code(store: ObjectStore, flow: str, file: str) -> dict[str, Any]:
    """The flow file, kept with the run once per content (what `Run.code` reads)."""
    import hashlib

    def read() -> bytes:
        with open(file, "rb") as f:
            return f.read()

    try:
        source = await anyio.to_thread.run_sync(read)
    except OSError:
        return {}
    digest = hashlib.sha256(source).hexdigest()
    key = art.blob_key(flow, digest)
    if not await store.exists(key):
        await store.put(key, [source])
    return {"path": file, "key": digest, "size": len(source)}


async def _drive(handle: RunningFlow, plan: RunPlan, bus: EventBus) -> None:
    ref, store, origin = plan.ref, plan.store, plan.origin
    record = RunRecord(
        flow=ref.name,
        run_id=handle.run_id,
        params={k: repr(v) for k, v in plan.values.items()},
        graph=_graph_with_decorators(plan),
        started_at=time.time(),
        user=current_user(),
        tags=plan.tags,
        datastore=plan.datastore,
        origin_run_id=origin.run_id if origin else None,
        host=socket.gethostname(),
        pid=os.getpid(),
        system_tags=project_tags(plan.project),
        triggers=plan.triggers or {},
    )
    key = run_record_key(ref.name, handle.run_id)
    try:
        if origin is not None:
            origin.new_run_id = handle.run_id
            record.param_refs = origin_params(origin, list(flow_parameters(plan.graph.flow_cls)))
            record.params = origin.record.params
        else:
            record.param_refs = await save_values(store, ref.name, plan.values)
        record.code = await _save_code(store, ref.name, ref.file)
        record.heartbeat_at = time.time()
        await store.put(key, [record.pack()])
        bus.emit(RunStarted(ref.name, handle.run_id, store.url, record.origin_run_id))
        ctx = RunContext(
            flow_name=ref.name,
            run_id=handle.run_id,
            flow_module=ref.module,
            flow_file=ref.file,
            sys_path=list(ref.sys_path),
            datastore=plan.datastore,
            store_root=store.url,
            param_artifacts=record.param_refs,
            param_names=list(record.param_refs),
            decorators=plan.decorators,
            tags=plan.tags,
            origin_run_id=record.origin_run_id,
            max_num_splits=plan.max_num_splits,
            environments=plan.environments or {},
            current=dict(plan.project or {}),
        )
        backend = plan.backend or _router(plan, handle.run_id)
        async with backend, anyio.create_task_group() as beating:
            scheduler = Scheduler(plan.graph, ctx, backend, store, bus, plan.max_workers, origin)
            beating.start_soon(_heartbeat, store, key, record, scheduler)
            try:
                await scheduler.run()
                record.status = "done"
            except TaskFailedError as e:
                record.status = "failed"
                record.error = {
                    "task": e.pathspec,
                    "message": str(e),
                    "traceback": e.traceback or "",
                }
            finally:
                beating.cancel_scope.cancel()
                _count_tasks(record, scheduler)
            record.end_task = scheduler.end_task
    except BaseException as e:
        # Not a task's failure but the run's: cancellation, or an error of the machinery (say,
        # the flow no longer loads in the task launcher). The run record and RunFinished say
        # which; run_flow() then returns an unsuccessful Run rather than raising, except that
        # cancellation (and anything not an Exception) goes on up.
        stopping = (anyio.get_cancelled_exc_class(), KeyboardInterrupt)
        if isinstance(e, stopping) or (
            isinstance(e, BaseExceptionGroup) and e.subgroup(stopping) is not None
        ):
            record.status = "cancelled"
            raise
        leaf = first_error(e) if isinstance(e, BaseExceptionGroup) else e
        message = str(leaf) if isinstance(leaf, AflowException) else f"{type(leaf).__name__}: {leaf}"
        record.status = "failed"
        record.error = {"message": message, "traceback": "".join(traceback.format_exception(leaf))}
        if not isinstance(e, Exception):
            raise
    finally:
        record.finished_at = record.heartbeat_at = time.time()
        with anyio.CancelScope(shield=True):
            try:
                await fold_changed_tags(store, record)  # run.add_tag() while it ran
                await store.put(key, [record.pack()])
            finally:
                error = record.error["message"] if record.error else None
                counts = (record.tasks_done, record.tasks_failed, record.tasks_stopped)
                bus.emit(RunFinished(ref.name, handle.run_id, record.status, error, *counts))
                bus.close()
                if plan.owns_store:
                    with contextlib.suppress(Exception):
                        await store.aclose()
                handle._result = AsyncRun(store, ref.name, handle.run_id, record)
                handle._done.set()


def _router(plan: RunPlan, run_id: str) -> Backend:
    """The run's own backend: local processes, and the remote drivers its steps ask for."""
    ref, store = plan.ref, plan.store
    local = LocalBackend(ref.name, ref.module, ref.file, list(ref.sys_path), plan.datastore, store.url)
    remote = RemoteContext(ref.name, run_id, ref.file, plan.datastore, store, plan.max_workers)
    return StepRouter(local, remote_steps(plan.decorators).values(), remote)


def _kind_of(store: ObjectStore) -> str:
    """The datastore name a caller's store goes by (in the run record, for task processes)."""
    for name, kind in REMOTE.items():
        if store.url.startswith(kind.scheme):
            return name
    return store.url.split("://", 1)[0] if "://" in store.url else "local"


def _graph_with_decorators(plan: RunPlan) -> dict[str, Any]:
    """The graph as the run record keeps it, with each step's decorators and their settings
    (the flow's own and --with's), so readers know, say, how many retries a step has."""
    graph = plan.graph.to_dict()
    for name, step in graph["steps"].items():
        decorators = dict(plan.decorators.get(name, {}))
        user = decorators.pop("user", None)
        if user:  # by name only: the spec carries them pickled for the task
            decorators["user"] = {"wrappers": [f"{w[0]}.{w[1]}" for w in user["wrappers"]]}
        step["decorators"] = decorators
    return graph


def _count_tasks(record: RunRecord, scheduler: Scheduler) -> None:
    record.tasks_done = scheduler.tasks_done
    record.tasks_failed = scheduler.tasks_failed
    record.tasks_stopped = scheduler.tasks_stopped


async def _heartbeat(store: ObjectStore, key: str, record: RunRecord, scheduler: Scheduler) -> None:
    """Rewrite the run record now and then, so a reader can tell a live run from a dead one."""
    while True:
        await anyio.sleep(HEARTBEAT_SECONDS)
        record.heartbeat_at = time.time()
        _count_tasks(record, scheduler)
        try:
            await fold_changed_tags(store, record)
            await store.put(key, [record.pack()])
        except Exception:
            # A missed beat is not worth failing a healthy run for; the next one may land.
            continue
