"""Inspection commands: `list runs`, `show` and `logs`, over the client's async core.

Each command takes the flow first, as a flow file (`aflow show flow.py`) or a flow name
(`aflow show MyFlow`), reads the store through `aflow.client.core` only, and prints with rich. They
see every run in the store (no namespace filter) and never load an artifact's value. Errors a user
can cause (an unknown flow, run, step or task, an empty store) are one line on stderr and exit 1.
"""

from __future__ import annotations

import functools
import math
import sys
import time
from collections.abc import Sequence
from enum import StrEnum
from typing import Annotated, Any

import anyio
import typer
from rich.console import Console
from rich.table import Table
from rich.text import Text

from aflow.cli.common import app
from aflow.cli.options import Datastore, DatastoreRoot
from aflow.cli.reading import (
    Target,
    command_store,
    existing_flow,
    find_run,
    find_step,
    flow_of,
    name_damaged,
    run_async,
)
from aflow.client import core
from aflow.client.core import AsyncFlow, AsyncRun, AsyncStep, AsyncTask, LogLine
from aflow.exception import AflowNotFound
from aflow.stores.records import RunRecord, TaskRecord
from aflow.stores.transfer import gather

list_app = typer.Typer(help="List what the store holds.", no_args_is_help=True, rich_markup_mode=None)
app.add_typer(list_app, name="list")

_STATUS_STYLE = {"done": "green", "failed": "red", "running": "yellow", "dead": "magenta"}
_POLL_SECONDS = 0.5


class GraphFormat(StrEnum):
    text = "text"
    mermaid = "mermaid"
    dot = "dot"


# -- shared helpers -------------------------------------------------------------------------------


def _console() -> Console:
    wide = None if sys.stdout.isatty() else 200  # piped: no wrapping at 80 columns
    return Console(width=wide, highlight=False, soft_wrap=wide is not None)


def _when(seconds: float | None) -> str:
    return time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(seconds)) if seconds else "-"


def _span(seconds: float | None) -> str:
    if seconds is None or seconds < 0:
        return "-"
    if seconds < 10:
        return f"{seconds:.2f}s"
    if seconds < 60:
        return f"{seconds:.1f}s"
    if seconds < 3600:
        return f"{int(seconds // 60)}m{int(seconds % 60):02d}s"
    return f"{int(seconds // 3600)}h{int(seconds % 3600 // 60):02d}m"


def _run_span(record: RunRecord, status: str) -> str:
    end = record.finished_at or (record.heartbeat_at if status == "dead" else time.time())
    return _span(end - record.started_at) + ("…" if status == "running" else "")


def _bytes(size: int) -> str:
    for unit in ("B", "KB", "MB", "GB"):
        if size < 1024 or unit == "GB":
            return f"{size} B" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1024  # type: ignore[assignment]
    return f"{size} B"


def _status(status: str) -> Text:
    return Text(status, style=_STATUS_STYLE.get(status, "dim"))


# -- list runs ------------------------------------------------------------------------------------


@list_app.command(
    "runs", help="List runs, newest first: status (dead: its scheduler died), times, tasks, tags."
)
def list_runs(
    target: Annotated[
        str | None,
        typer.Argument(metavar="FLOW", help="The flow's file or name; omit for every flow's runs."),
    ] = None,
    flow: Annotated[
        str | None, typer.Option("--flow", help="The flow's name (instead of a file).")
    ] = None,
    limit: Annotated[int, typer.Option(help="Show at most this many runs.")] = 20,
    datastore: Datastore = None,
    datastore_root: DatastoreRoot = None,
) -> None:
    async def go() -> None:
        store = command_store(datastore, datastore_root)
        name = flow or (flow_of(target)[0] if target else None)
        flows = [await existing_flow(store, name)] if name else await AsyncFlow.list(store=store)
        if not flows:
            await AsyncFlow("_", store=store).check_exists()  # says the store is empty
        found: list[tuple[str, AsyncRun]] = []
        total = 0
        for f in flows:
            ids = await f.run_ids()
            total += len(ids)
            found += [(r.id, r) for r in await f.load_runs(ids[: max(limit, 0)])]
        found.sort(key=lambda pair: core.id_order(pair[0]), reverse=True)
        shown = [r for _, r in found[: max(limit, 0)]]
        await _print_runs(shown, many_flows=name is None, total=total)
        name_damaged([e for f in flows for e in f.damaged])

    run_async(go)


async def _print_runs(runs: Sequence[AsyncRun], many_flows: bool, total: int) -> None:
    table = Table(box=None, header_style="bold", pad_edge=False)
    if many_flows:
        table.add_column("Flow")
    for column in ("Run ID", "Status", "Started", "Duration", "Tasks done/failed/stopped", "Tags"):
        table.add_column(column, no_wrap=column != "Tags")
    now = time.time()
    for run in runs:
        record = await run.record()
        status = record.liveness(now)
        row: list[Any] = [run.flow] if many_flows else []
        row += [
            run.id,
            _status(status),
            _when(record.started_at),
            _run_span(record, status),
            f"{record.tasks_done}/{record.tasks_failed}/{record.tasks_stopped}",
            ", ".join(sorted(core.run_tags(record))),
        ]
        table.add_row(*row)
    console = _console()
    console.print(table)
    if total > len(runs):
        console.print(f"{len(runs)} of {total} runs shown (--limit N for more)", style="dim")


# -- show -----------------------------------------------------------------------------------------


@app.command(help="Show the flow's DAG or, given a run id (or latest), each step of that run.")
def show(
    target: Target,
    run_id: Annotated[
        str | None, typer.Argument(metavar="RUN_ID", help="A run id, or latest; omit to see the DAG.")
    ] = None,
    graph: Annotated[bool, typer.Option("--graph", help="Print only the DAG.")] = False,
    fmt: Annotated[
        GraphFormat, typer.Option("--format", help="How to print the DAG.")
    ] = GraphFormat.text,
    datastore: Datastore = None,
    datastore_root: DatastoreRoot = None,
) -> None:
    async def go() -> None:
        store = command_store(datastore, datastore_root)
        name, flow_cls = flow_of(target)
        if run_id is None and flow_cls is not None:
            from aflow.graph import graph_for

            typer.echo(render_graph(name, graph_for(flow_cls).check().to_dict(), fmt))
            return
        run = await find_run(store, name, run_id or "latest")
        record = await run.record()
        if graph or run_id is None:
            typer.echo(render_graph(name, record.graph, fmt))
        else:
            await _print_run(run)
            name_damaged(run.damaged)

    run_async(go)


def render_graph(name: str, graph: dict[str, Any], fmt: GraphFormat) -> str:
    """The DAG (a graph dict as run records keep it) as text, a mermaid flowchart or graphviz dot."""
    steps: dict[str, dict[str, Any]] = graph.get("steps", {})

    def edge_label(info: dict[str, Any]) -> str:
        return f"foreach {info['foreach']}" if info.get("foreach") else ""

    def edges(info: dict[str, Any]) -> list[tuple[str, str]]:
        """(next step, label) for each transition; a conditional step's carry their case."""
        cases = info.get("switch_cases")
        if cases:
            return [(nxt, f"{info['condition']} = {case}") for case, nxt in cases.items()]
        return [(nxt, edge_label(info)) for nxt in info.get("next", [])]

    if fmt is GraphFormat.mermaid:
        lines = ["flowchart TD"]
        for step, info in steps.items():
            # Node ids get a prefix: `end` is a mermaid keyword.
            lines.append(f'    step_{step}["{step} ({info.get("type", "")})"]')
        for step, info in steps.items():
            lines += [
                f"    step_{step} -->{f'|{label}|' if label else ''} step_{nxt}"
                for nxt, label in edges(info)
            ]
        return "\n".join(lines)
    if fmt is GraphFormat.dot:
        lines = [f"digraph {name} {{", "    node [shape=box];"]
        for step, info in steps.items():
            lines.append(f'    "{step}" [label="{step}\\n({info.get("type", "")})"];')
        for step, info in steps.items():
            lines += [
                f'    "{step}" -> "{nxt}"{f" [label={chr(34)}{label}{chr(34)}]" if label else ""};'
                for nxt, label in edges(info)
            ]
        return "\n".join([*lines, "}"])
    width = max((len(s) for s in steps), default=0)
    lines = [f"{name}  ({graph.get('file', '?')}, {len(steps)} steps)", ""]
    for step, info in steps.items():
        nxt = ", ".join(info.get("next", [])) or "(end of the flow)"
        how = f"  ({edge_label(info)})" if edge_label(info) else ""
        if info.get("switch_cases"):
            cases = ", ".join(f"{c} → {s}" for c, s in info["switch_cases"].items())
            nxt, how = f"one of {nxt}", f"  (by {info['condition']}: {cases})"
            if info.get("loops_to"):
                how += f", loops back to {', '.join(info['loops_to'])}"
        lines.append(f"{step:<{width}}  {info.get('type', ''):<8} → {nxt}{how}")
        doc = (info.get("doc") or "").strip()
        if doc:
            lines += [f"{'':<{width}}    {ln.strip()}" for ln in doc.splitlines() if ln.strip()]
    return "\n".join(lines)


async def _print_run(run: AsyncRun) -> None:
    record = await run.live_record()
    status = record.liveness(time.time())
    console = _console()
    head = Text.assemble(f"Run {run.pathspec}  ", _status(status))
    console.print(head)
    facts = [f"started {_when(record.started_at)}", f"duration {_run_span(record, status)}"]
    facts += [f"tags {', '.join(sorted(core.run_tags(record)))}"] if core.run_tags(record) else []
    facts += [f"resumed from {record.origin_run_id}"] if record.origin_run_id else []
    console.print("  ".join(facts))
    if record.params:
        console.print("params " + ", ".join(f"{k}={v}" for k, v in record.params.items()))
    if record.error:
        console.print(f"error: {record.error.get('message', '')}", style="red")
    steps = await run.steps()
    per_step = await gather([s.records for s in steps])
    table = Table(box=None, header_style="bold", pad_edge=False, title_justify="left")
    for column in ("Step", "Tasks", "Done", "Failed", "Stopped", "Wall time", "Slowest task", "Failure"):
        table.add_column(column, no_wrap=column != "Failure")
    for step, records in zip(steps, per_step, strict=True):
        table.add_row(step.name, *_step_row(records, run_over=status != "running"))
    for missing in [s for s in record.graph.get("steps", {}) if s not in {x.name for x in steps}]:
        table.add_row(missing, "0", "", "", "", "", "", Text("not run", style="dim"))
    console.print()
    console.print(table)
    await _print_artifacts(console, run, steps)


def _step_row(records: list[TaskRecord | None], run_over: bool) -> list[Any]:
    """A step's counts. Once the run is over, a task with no record was stopped before it could
    write one (the scheduler counted it so too)."""
    unrecorded = sum(r is None for r in records) if run_over else 0
    ended = [r for r in records if r is not None]
    stopped = [r for r in ended if r.stopped]
    failed = [r for r in ended if not r.ok and not r.stopped]
    wall = max((r.finished_at for r in ended), default=0) - min((r.started_at for r in ended), default=0)
    slowest = max((r.finished_at - r.started_at for r in ended), default=None)
    failure: Any = ""
    if failed:
        first = min(failed, key=lambda r: int(r.task_id))
        error = first.error or {}
        more = f" (+{len(failed) - 1} more)" if len(failed) > 1 else ""
        text = f"{first.task_id}: {error.get('type', '')}: {error.get('message', '')}{more}"
        failure = Text(text, style="red")
    return [
        str(len(records)),
        str(len(ended) - len(failed) - len(stopped)),
        str(len(failed)),
        str(len(stopped) + unrecorded),
        _span(wall if ended else None),
        _span(slowest),
        failure,
    ]


async def _print_artifacts(console: Console, run: AsyncRun, steps: Sequence[AsyncStep]) -> None:
    end = await run.end_task()
    tasks = [end] if end else [t for t in [await s.task() for s in steps] if t is not None]
    for task in tasks:
        artifacts = await task.artifacts()
        table = Table(box=None, header_style="bold", pad_edge=False)
        for column in ("Artifact", "Size", "SHA-256"):
            table.add_column(column, no_wrap=True)
        for a in artifacts:
            table.add_row(a.name, _bytes(a.size), a.sha[:12])
        console.print()
        console.print(f"Artifacts of {task.pathspec}" + ("" if artifacts else ": none"), style="bold")
        if artifacts:
            console.print(table)


# -- logs -----------------------------------------------------------------------------------------


@app.command(
    help="Print the saved output of a step's tasks: RUN_ID/STEP[/TASK_ID] (RUN_ID may be latest). "
    "--follow prints a live run's lines as they are saved (every few seconds while a task runs) "
    "until the run ends."
)
def logs(
    target: Target,
    pathspec: Annotated[
        str | None,
        typer.Argument(
            metavar="RUN_ID/STEP[/TASK_ID]",
            help="Which task(s); or give Flow/RUN_ID/STEP[/TASK_ID] alone as FLOW.",
        ),
    ] = None,
    stderr: Annotated[bool, typer.Option("--stderr", help="Show stderr instead of stdout.")] = False,
    both: Annotated[bool, typer.Option("--both", help="Show both streams, in time order.")] = False,
    attempt: Annotated[int | None, typer.Option(help="The attempt (default: the latest).")] = None,
    follow: Annotated[
        bool, typer.Option("--follow", "-f", help="Keep printing until the run ends.")
    ] = False,
    timestamps: Annotated[
        bool, typer.Option("--timestamps", "-t", help="Prefix each line's time.")
    ] = False,
    datastore: Datastore = None,
    datastore_root: DatastoreRoot = None,
) -> None:
    stream = None if both else "stderr" if stderr else "stdout"

    async def go() -> None:
        store = command_store(datastore, datastore_root)
        run, step, one = await find_step(store, target, pathspec)
        printer = _LogPrinter(stream, timestamps)
        if follow:
            await _follow(run, step, one, attempt, printer)
        else:
            await _print_saved(step, one, attempt, printer)
        if not printer.printed:
            what = "stdout or stderr" if both else stream
            typer.echo(
                f"{step.pathspec}{'/' + one.id if one else ''}: nothing saved on {what}", err=True
            )

    run_async(go)


async def _print_saved(
    step: AsyncStep, one: AsyncTask | None, attempt: int | None, printer: _LogPrinter
) -> None:
    """One task's lines as they are; a step's tasks' lines, each prefixed [run/step/task]."""
    tasks = [one] if one else await step.tasks()
    if one and attempt is not None and attempt not in await one.attempts():
        have = ", ".join(map(str, await one.attempts())) or "none"
        raise AflowNotFound(f"task {one.pathspec} has no attempt {attempt} (its attempts: {have})")
    stream = printer.stream
    logs = await gather([functools.partial(t.at_attempt(attempt).log, stream) for t in tasks])
    for task, lines in zip(tasks, logs, strict=True):
        printer.print(task, lines, prefixed=len(tasks) > 1)


class _LogPrinter:
    def __init__(self, stream: str | None, timestamps: bool) -> None:
        self.stream = stream
        self.timestamps = timestamps
        self.printed = False

    def print(self, task: AsyncTask, lines: list[LogLine], prefixed: bool) -> None:
        prefix = f"[{task.run_id}/{task.step}/{task.id}] " if prefixed else ""
        out = []
        for ln in lines:
            stamp = f"{ln.stamp} " if self.timestamps else ""
            out.append(f"{stamp}{prefix}{ln.text}\n")
        if out:
            sys.stdout.write("".join(out))
            sys.stdout.flush()
            self.printed = True


_SETTLE_SECONDS = 10.0  # a finished task's last log save comes within this


async def _follow(
    run: AsyncRun, step: AsyncStep, one: AsyncTask | None, attempt: int | None, printer: _LogPrinter
) -> None:
    """Print each task attempt's lines as its log grows (it is saved every few seconds while the
    task runs), until the run ends. An attempt is done once its log has not grown for a while
    after its record appeared (the final save comes after the record)."""
    printed: dict[tuple[str, int], int] = {}
    finished_at: dict[tuple[str, int], float] = {}
    done: set[tuple[str, int]] = set()
    while True:
        status = await run.status()
        live = status == "running"
        for task in [one] if one else await step.tasks():
            for n in [attempt] if attempt is not None else await task.attempts():
                key = (task.id, n)
                if key in done:
                    continue
                chosen = task.at_attempt(n)
                if key not in finished_at and await chosen.record_or_none() is not None:
                    finished_at[key] = time.monotonic()
                lines = await chosen.log(printer.stream)
                new = lines[printed.get(key, 0) :]
                if new:
                    printer.print(task, new, prefixed=one is None)
                    printed[key] = len(lines)
                elif time.monotonic() - finished_at.get(key, math.inf) > _SETTLE_SECONDS:
                    done.add(key)
        if not live:
            if status == "dead":
                typer.echo(f"run {run.pathspec} is dead: its scheduler stopped", err=True)
            return
        await anyio.sleep(_POLL_SECONDS)
