"""The backend a run hands its tasks to: each task goes where its step's decorators say (local, or
@batch / @kubernetes), so a flow mixes local and remote steps without the scheduler knowing.

The remote backends a run needs are started with it (their pollers and watches are task groups,
which must be entered and left by the same task) and stopped with it, which stops their jobs.
"""

from __future__ import annotations

import contextlib
import importlib
import importlib.util
from collections.abc import Iterable
from typing import Any

from aflow.backends.base import Backend, BackendBase, LogSink
from aflow.backends.errors import BackendUnavailable
from aflow.backends.remote import RemoteContext
from aflow.decorators import compute_of
from aflow.engine.wire import TaskExit, TaskSpec
from aflow.exception import AflowException
from aflow.graph import FlowGraph
from aflow.stores.factory import REMOTE

# compute decorator -> (module, class, the extra with its client library, that library's module)
DRIVERS = {
    "batch": ("aflow.backends.batch", "BatchBackend", "aws", "aioboto3"),
    "kubernetes": ("aflow.backends.k8s", "KubernetesBackend", "k8s", "kubernetes_asyncio"),
}


def remote_steps(decorators: dict[str, dict[str, dict[str, Any]]]) -> dict[str, str]:
    """step -> compute ("batch" / "kubernetes") for every step that runs remotely."""
    out = {}
    for step, own in decorators.items():
        compute = compute_of(step, own)
        if compute is not None:
            out[step] = compute
    return out


def check_remote(
    decorators: dict[str, dict[str, dict[str, Any]]], datastore: str, graph: FlowGraph
) -> None:
    """Refuse, before anything runs, a remote step the run cannot serve (saying file:line)."""
    for step, compute in remote_steps(decorators).items():
        node = graph[step]
        try:
            _check_step(step, compute, decorators[step], datastore)
        except AflowException as e:
            raise AflowException(f"{node.file}:{node.def_line}: {e}") from None


def _check_step(step: str, compute: str, decorators: dict[str, dict[str, Any]], datastore: str) -> None:
    if datastore not in REMOTE:
        others = "" if compute == "batch" else " (or azure, gs)"
        raise AflowException(
            f"step '{step}' runs on @{compute}, whose containers cannot see this machine's "
            f"local datastore: run with --datastore s3{others} and a root "
            "(--datastore-root s3://BUCKET/PREFIX, or AFLOW_DATASTORE_SYSROOT_S3)"
        )
    module, _, extra, library = DRIVERS[compute]
    if importlib.util.find_spec(library) is None:
        from aflow.install_hint import needs_extra

        raise AflowException(needs_extra(f"step '{step}' runs on @{compute}, which", extra))
    check_step = getattr(importlib.import_module(module), "check_step", None)
    if check_step is not None:
        check_step(step, decorators)


class StepRouter(BackendBase):
    """The run's backend: each task to the local backend or the remote driver its step's compute
    decorator names; entering it starts the drivers the run needs, leaving it stops them."""

    name = "router"

    def __init__(self, local: Backend, computes: Iterable[str], ctx: RemoteContext) -> None:
        self.local = local
        self.backends: dict[str | None, Backend] = {None: local}
        for compute in sorted(set(computes)):
            module, cls, _, _ = DRIVERS[compute]
            self.backends[compute] = getattr(importlib.import_module(module), cls)(ctx)

    async def _start(self, stack: contextlib.AsyncExitStack) -> None:
        for backend in self.backends.values():
            await stack.enter_async_context(backend)

    async def run(self, task: TaskSpec, logs: LogSink) -> TaskExit:
        backend = self.backends.get(compute_of(task.step, task.decorators))
        if backend is None:  # a resumed run's step gained @batch: the plan said otherwise
            raise BackendUnavailable(f"step '{task.step}': its backend was not started for this run")
        return await backend.run(task, logs)
