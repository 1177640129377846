"""`aflow card view|get|list`: a task's cards from the shell, as `python flow.py card ...` in Metaflow.

Each takes the flow first (its file or its name) and then the task as RUN_ID/STEP/TASK_ID,
RUN_ID/STEP (a step run once) or STEP (the latest run); or the whole pathspec
Flow/RUN_ID/STEP/TASK_ID alone, or RUN_ID/STEP/TASK_ID alone (the store says whose run it is).
`view` writes the card's self-contained HTML to a file, prints its path and opens it in the
desktop's browser when there is one; `get` writes it to FILE, or to stdout.
"""

from __future__ import annotations

import json
import os
import sys
import tempfile
from pathlib import Path
from typing import Annotated

import anyio
import typer

from aflow.cards.client import find_cards, open_in_browser
from aflow.cards.storage import CardRef, read_data, read_html
from aflow.cli.common import app
from aflow.cli.options import Datastore, DatastoreRoot
from aflow.cli.reading import Target, command_store, find_run, flow_of, run_async
from aflow.client.core import AsyncFlow, AsyncTask
from aflow.exception import AflowException, AflowNotFound
from aflow.stores.base import ObjectStore
from aflow.stores.records import run_record_key

card_app = typer.Typer(help="See the cards (@card reports) of a task.", no_args_is_help=True)
app.add_typer(card_app, name="card")

TaskArg = Annotated[
    str | None,
    typer.Argument(
        metavar="RUN_ID/STEP[/TASK_ID]",
        help="The task: RUN_ID/STEP/TASK_ID, RUN_ID/STEP (one task), or STEP (the latest run).",
    ),
]
CardId = Annotated[str | None, typer.Option("--id", help="Only the card with this id.")]
CardType = Annotated[str | None, typer.Option("--type", help="Only cards of this type.")]
Attempt = Annotated[int | None, typer.Option(help="The attempt (default: the latest with cards).")]


def _is_pathspec(target: str) -> bool:
    """Flow/RUN_ID/STEP[/TASK_ID] rather than a flow file or a flow name."""
    return target.count("/") >= 2 and not target.endswith(".py") and not os.path.isfile(target)


def _split(target: str, pathspec: str | None) -> tuple[str, str]:
    """(flow, the rest); the flow is "" for RUN_ID/STEP/TASK_ID alone (a run id is never a flow
    name: those are identifiers), found in the store by `_owner`."""
    if pathspec is None and _is_pathspec(target):
        flow, _, rest = target.strip("/").partition("/")
        if flow[:1].isdigit() and rest.count("/") == 1:
            return "", target.strip("/")
        return flow, rest
    if pathspec is None:
        raise AflowException("which task? give FLOW RUN_ID/STEP/TASK_ID (or Flow/RUN_ID/STEP/TASK_ID)")
    return flow_of(target)[0], pathspec


async def _owner(store: ObjectStore, run_id: str) -> str:
    """The flow a run id belongs to."""
    flows = [f.name for f in await AsyncFlow.list(store=store)]
    found = [f for f in flows if await store.exists(run_record_key(f, run_id))]
    if len(found) != 1:
        why = "no flow in this store has" if not found else f"{', '.join(found)} all have"
        raise AflowNotFound(f"{why} a run {run_id}: give the flow, as FLOW RUN_ID/STEP/TASK_ID")
    return found[0]


async def _task(store: ObjectStore, flow: str, pathspec: str, attempt: int | None) -> AsyncTask:
    if not flow:
        flow = await _owner(store, pathspec.split("/")[0])
    parts = pathspec.strip("/").split("/")
    if len(parts) == 1:
        parts = ["latest", *parts]
    if len(parts) not in (2, 3) or not all(parts):
        raise AflowException(f"expected RUN_ID/STEP/TASK_ID, RUN_ID/STEP or STEP, got '{pathspec}'")
    run = await find_run(store, flow, parts[0])
    step = await run.step(parts[1])
    if len(parts) == 3:
        task = await step.task(parts[2])
    else:
        tasks = await step.tasks()
        if len(tasks) != 1:
            ids = ", ".join(t.id for t in tasks[:10])
            raise AflowException(f"step {step.pathspec} ran {len(tasks)} tasks ({ids}): name one")
        task = tasks[0]
    assert task is not None
    return task.at_attempt(attempt) if attempt is not None else task


async def _cards(
    target: str, pathspec: str | None, card_id: str | None, card_type: str | None,
    attempt: int | None, datastore: str | None, datastore_root: str | None,
) -> tuple[ObjectStore, AsyncTask, list[CardRef]]:  # fmt: skip
    store = command_store(datastore, datastore_root)
    flow, rest = _split(target, pathspec)
    task = await _task(store, flow, rest, attempt)
    refs = await find_cards(task, card_id, card_type)
    if not refs:
        which = " ".join(f"--{k} {v}" for k, v in (("id", card_id), ("type", card_type)) if v)
        raise AflowNotFound(
            f"task {task.pathspec} has no cards{f' matching {which}' if which else ''} "
            "(does its step have @card? cards are saved when the task succeeds)"
        )
    return store, task, refs


def _describe(ref: CardRef) -> str:
    return f"{ref.type}{f' id={ref.id}' if ref.id else ''} (attempt {ref.attempt})"


@card_app.command(help="Open a task's card in the browser (and print where its file is).")
def view(
    target: Target,
    pathspec: TaskArg = None,
    card_id: CardId = None,
    card_type: CardType = None,
    attempt: Attempt = None,
    no_browser: Annotated[
        bool, typer.Option("--no-browser", help="Only write the file and print its path.")
    ] = False,
    datastore: Datastore = None,
    datastore_root: DatastoreRoot = None,
) -> None:
    async def go() -> None:
        store, _task_of, refs = await _cards(
            target, pathspec, card_id, card_type, attempt, datastore, datastore_root
        )
        ref = refs[0]
        if len(refs) > 1:
            others = "; ".join(_describe(r) for r in refs[1:])
            typer.echo(f"{len(refs)} cards; showing {_describe(ref)} (others: {others})", err=True)
        folder = Path(tempfile.gettempdir()) / "aflow-cards"
        folder.mkdir(exist_ok=True)
        path = folder / f"{ref.flow}-{ref.run_id}-{ref.step}-{ref.task_id}-{ref.name}.html"
        path.write_text(await read_html(store, ref), encoding="utf-8")
        typer.echo(str(path))
        if not no_browser and not open_in_browser(str(path)):
            typer.echo("no browser to open here: open the file above in one", err=True)

    run_async(go)


@card_app.command(help="Write a task's card (one self-contained HTML file) to FILE, or to stdout.")
def get(
    target: Target,
    pathspec: TaskArg = None,
    file: Annotated[str | None, typer.Argument(metavar="FILE", help="Where to write it.")] = None,
    card_id: CardId = None,
    card_type: CardType = None,
    attempt: Attempt = None,
    datastore: Datastore = None,
    datastore_root: DatastoreRoot = None,
) -> None:
    # `aflow card get Flow/RUN/STEP/TASK out.html`: the pathspec whole, then the file.
    if file is None and pathspec is not None and _is_pathspec(target):
        pathspec, file = None, pathspec

    async def go() -> None:
        store, _task_of, refs = await _cards(
            target, pathspec, card_id, card_type, attempt, datastore, datastore_root
        )
        if len(refs) > 1:
            others = "; ".join(_describe(r) for r in refs[1:])
            typer.echo(f"{len(refs)} cards; wrote {_describe(refs[0])} (others: {others})", err=True)
        html = await read_html(store, refs[0])
        if file is None or file == "-":
            sys.stdout.write(html)
        else:
            await anyio.Path(file).write_text(html, encoding="utf-8")
            typer.echo(file)

    run_async(go)


@card_app.command("list", help="List a task's cards (or every card of a run, given RUN_ID).")
def list_cards_command(
    target: Target,
    pathspec: TaskArg = None,
    card_id: CardId = None,
    card_type: CardType = None,
    as_json: Annotated[bool, typer.Option("--as-json", help="Print JSON.")] = False,
    datastore: Datastore = None,
    datastore_root: DatastoreRoot = None,
) -> None:
    async def go() -> None:
        store = command_store(datastore, datastore_root)
        flow, rest = (
            _split(target, pathspec) if pathspec or _is_pathspec(target) else (target, "latest")
        )
        if "/" in rest.strip("/"):
            tasks = [await _task(store, flow, rest, None)]
        else:  # a whole run: every task of every step
            flow = flow_of(flow)[0] if pathspec is None else flow
            run = await find_run(store, flow, rest)
            tasks = [t for s in await run.steps() for t in await s.tasks()]
        found = []
        for t in tasks:
            for ref in await find_cards(t, card_id, card_type):
                data = await read_data(store, ref)
                found.append((ref, data))
        if as_json:
            rows = [
                {"pathspec": r.pathspec, "type": r.type, "id": r.id, "attempt": r.attempt,
                 "final": bool(d.get("final"))}
                for r, d in found
            ]  # fmt: skip
            typer.echo(json.dumps(rows, indent=2))
            return
        if not found:
            typer.echo("no cards", err=True)
        for ref, data in found:
            state = "" if data.get("final") else "  (updating: the task is running)"
            typer.echo(f"{ref.pathspec}  {_describe(ref)}{state}")

    run_async(go)
