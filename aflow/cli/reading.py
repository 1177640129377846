"""Reading the store for a command: the FLOW argument (a flow file or a flow name), the store a
command opens, a run found by id (naming the damaged records a listing skipped), and the event loop a
command's async body runs on, which closes the stores it opened. Shared by the inspection, card, dump,
verify and ui commands.
"""

from __future__ import annotations

import contextlib
import os
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Annotated, Any

import anyio
import typer

from aflow.cli.common import guarded, load_flow
from aflow.client import core
from aflow.client.core import AsyncFlow, AsyncRun, AsyncStep, AsyncTask
from aflow.exception import AflowException, DamagedData, DamagedRecordWarning
from aflow.stores.base import ObjectStore
from aflow.stores.factory import open_store

Target = Annotated[str, typer.Argument(metavar="FLOW", help="The flow: its file (flow.py) or its name.")]


def flow_of(target: str) -> tuple[str, type | None]:
    """A flow file (loaded) or a bare flow name."""
    if target.endswith(".py") or os.path.sep in target or os.path.isfile(target):
        flow_cls = load_flow(Path(target))
        return flow_cls.__name__, flow_cls
    if not target.isidentifier():
        raise AflowException(f"'{target}' is neither a flow file nor a flow name")
    return target, None


_opened: list[ObjectStore] = []


def command_store(datastore: str | None, datastore_root: str | None) -> ObjectStore:
    core.namespace(None)  # the commands show every run in the store
    # Skipped damaged records are named by name_damaged, once, after the command's output.
    warnings.simplefilter("ignore", DamagedRecordWarning)
    store = open_store(datastore, datastore_root)
    _opened.append(store)  # closed by run_async, on the loop that used it
    return store


async def existing_flow(store: ObjectStore, name: str) -> AsyncFlow:
    return await AsyncFlow(name, store=store).check_exists()


async def find_run(store: ObjectStore, flow: str, run_id: str) -> AsyncRun:
    found = await existing_flow(store, flow)
    run = await found.run(run_id)
    name_damaged(found.damaged)  # `latest` skipped them
    return run


def name_damaged(damaged: Sequence[DamagedData]) -> None:
    """Name each damaged record a listing skipped, on stderr, and say what to do."""
    for e in damaged:
        typer.echo(f"skipped a damaged record: {e.path} ({e.reason})", err=True)
    if damaged:
        typer.echo(
            "`aflow verify --quarantine` moves damaged records aside; resume redoes a task whose "
            "record was damaged",
            err=True,
        )


def run_async(fn: Any, *args: Any) -> Any:
    async def main() -> Any:
        try:
            return await fn(*args)
        finally:
            while _opened:
                with contextlib.suppress(Exception):
                    await _opened.pop().aclose()

    return guarded(lambda: anyio.run(main))


def split_full(target: str) -> tuple[str, str]:
    parts = target.strip("/").split("/")
    if len(parts) not in (3, 4):
        raise AflowException(
            "which run and step? give FLOW RUN_ID/STEP[/TASK_ID] or Flow/RUN_ID/STEP[/TASK_ID], "
            f"got '{target}'"
        )
    return parts[0], "/".join(parts[1:])


async def find_step(
    store: ObjectStore, target: str, pathspec: str | None
) -> tuple[AsyncRun, AsyncStep, AsyncTask | None]:
    """The run, step and (if named) task of FLOW RUN_ID/STEP[/TASK_ID] or Flow/RUN_ID/STEP[/TASK_ID]
    (then `pathspec` is empty)."""
    flow, rest = (flow_of(target)[0], pathspec) if pathspec else split_full(target)
    parts = rest.strip("/").split("/")
    if len(parts) not in (2, 3) or not all(parts):
        raise AflowException(f"expected RUN_ID/STEP or RUN_ID/STEP/TASK_ID, got '{rest}'")
    run = await find_run(store, flow, parts[0])
    step = await run.step(parts[1])
    return run, step, await step.task(parts[2]) if len(parts) == 3 else None
