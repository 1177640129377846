"""`dump RUN_ID/STEP[/TASK_ID]`: Metaflow's command that prints a task's artifacts (or writes them,
pickled, to a file), over the client's async core. Nothing is loaded that is not shown.
"""

from __future__ import annotations

import pickle
from pathlib import Path
from typing import Annotated, Any

import typer

from aflow.cli.common import app
from aflow.cli.options import Datastore, DatastoreRoot
from aflow.cli.reading import Target, command_store, find_step, run_async
from aflow.client.core import AsyncTask
from aflow.stores.transfer import gather


@app.command(
    help="Print the artifacts of a task, or of every task of a step: RUN_ID/STEP[/TASK_ID] "
    "(RUN_ID may be latest). --file writes them, pickled, to a file instead."
)
def dump(
    target: Target,
    pathspec: Annotated[
        str | None,
        typer.Argument(metavar="RUN_ID/STEP[/TASK_ID]", help="Which task(s)."),
    ] = None,
    private: Annotated[
        bool, typer.Option("--private/--no-private", help="Show _private artifacts too.")
    ] = False,
    max_value_size: Annotated[
        int,
        typer.Option(help="Show only values stored in fewer bytes than this; 0 shows names only."),
    ] = 1000,
    include: Annotated[
        str, typer.Option(help="Only these artifacts (a comma-separated list).")
    ] = "",
    file: Annotated[
        Path | None, typer.Option("--file", help="Write {pathspec: {name: value}} to this file.")
    ] = None,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="No headers.")] = False,
    datastore: Datastore = None,
    datastore_root: DatastoreRoot = None,
) -> None:
    wanted = {n for n in include.split(",") if n}

    async def go() -> None:
        store = command_store(datastore, datastore_root)
        run, step, one = await find_step(store, target, pathspec)
        tasks = [one] if one else await step.tasks()
        written: dict[str, dict[str, Any]] = {}
        for task in tasks:
            if not quiet:
                typer.echo(
                    f"Dumping output of run_id={run.id} step={step.name} task_id={task.id}", err=True
                )
            shown = await _artifacts(task, private, wanted, None if file else max_value_size)
            if file is not None:
                written[task.pathspec] = shown
            else:
                for name, value in shown.items():
                    typer.echo(f"{name}: {value}")
        if file is not None:
            file.write_bytes(pickle.dumps(written, protocol=pickle.HIGHEST_PROTOCOL))
            if not quiet:
                typer.echo(f"Artifacts written to {file}", err=True)

    run_async(go)


async def _artifacts(
    task: AsyncTask, private: bool, wanted: set[str], max_size: int | None
) -> dict[str, Any]:
    """name -> value (or repr, or a note where the value is too large to show)."""
    out: dict[str, Any] = {}
    chosen = [
        a
        for a in await task.artifacts()
        if (private or not a.name.startswith("_")) and (not wanted or a.name in wanted)
    ]
    if max_size == 0:
        return {a.name: "" for a in chosen}
    values = await gather([a.data for a in chosen if max_size is None or a.size < max_size])
    loaded = iter(values)
    for a in chosen:
        if max_size is not None and a.size >= max_size:
            out[a.name] = f"<{a.size} bytes: over --max-value-size {max_size}>"
        else:
            value = next(loaded)
            out[a.name] = value if max_size is None else repr(value)
    return out
