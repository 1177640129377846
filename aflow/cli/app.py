"""The typer application, whole: the commands that run or check a flow (`run`, `resume`, `check`,
`package`, `output-dot`/`output-raw`), the options before any command, and, imported at the end, the
modules that register the other commands (inspect, cards, dump, ui, verify) on the same `app`."""

from __future__ import annotations

import contextlib
import enum
import os
import signal
import sys
from pathlib import Path
from typing import Annotated, Any

import typer

from aflow.cli.common import FlowFile, app, guarded, load_flow, set_debug
from aflow.cli.options import Datastore, DatastoreRoot
from aflow.flowspec import FlowSpec
from aflow.triggers import SCHEDULERS

__all__ = ["app"]  # the whole application, every command registered on it


class EnvironmentKind(enum.StrEnum):
    pypi = "pypi"
    conda = "conda"


def _print_version(asked: bool) -> None:
    if asked:
        from aflow.about import VERSION

        typer.echo(f"aflow {VERSION} (Python {sys.version.split()[0]}, {sys.executable})")
        raise typer.Exit()


@app.callback()
def _options(
    debug: Annotated[bool, typer.Option("--debug", help="Show internal tracebacks.")] = False,
    version: Annotated[
        bool,
        typer.Option(
            "--version", callback=_print_version, is_eager=True, help="Print aflow's version and exit."
        ),
    ] = False,
    environment: Annotated[
        EnvironmentKind | None,
        typer.Option(
            help="Metaflow's switch for @pypi/@conda steps; accepted, not needed: aflow honours "
            "those decorators without it."
        ),
    ] = None,
) -> None:
    set_debug(debug)


MaxWorkers = Annotated[int, typer.Option(help="How many tasks may run at once.")]
RunIdFile = Annotated[
    Path | None, typer.Option(help="Write the run id to this file when the run starts.")
]
Quiet = Annotated[bool, typer.Option("--quiet", "-q", help="Only task output.")]
With = Annotated[
    list[str] | None,
    typer.Option(
        "--with",
        help="Add a decorator to every step: retry, catch:var=x, timeout:minutes=5, "
        "environment:vars={...}. Repeatable.",
    ),
]
Tags = Annotated[list[str] | None, typer.Option("--tag", help="Tag the run. Repeatable.")]
Branch = Annotated[
    str | None, typer.Option(help="A @project flow's branch for this run (default: user.<you>).")
]
Production = Annotated[
    bool, typer.Option("--production", help="Run a @project flow on its production branch.")
]
MaxNumSplits = Annotated[
    int | None, typer.Option(help="Fail a foreach wider than this (default: no limit).")
]


@app.command(
    # --help is ours so that, given a flow file, it can list the flow's parameters too.
    context_settings={
        "allow_extra_args": True,
        "ignore_unknown_options": True,
        "help_option_names": [],
    },
    help="Run the flow. Flow parameters follow as --name value (see: aflow run flow.py --help).",
)
def run(
    ctx: typer.Context,
    # Required; `aflow run --help` arrives here as the flow file "--help" (this command reads
    # --help itself, to list a flow's parameters).
    flow_file: Annotated[
        Path,
        typer.Argument(metavar="FLOW_FILE", help="The flow file (a .py file defining a FlowSpec)."),
    ],
    max_workers: MaxWorkers = 16,
    datastore: Datastore = None,
    datastore_root: DatastoreRoot = None,
    run_id_file: RunIdFile = None,
    quiet: Quiet = False,
    with_: With = None,
    tag: Tags = None,
    max_num_splits: MaxNumSplits = None,
    branch: Branch = None,
    production: Production = False,
) -> None:
    wants_help = any(a in ("--help", "-h") for a in ctx.args)
    named: Path | None = flow_file
    if str(flow_file) in ("--help", "-h"):
        named, wants_help = None, True  # `aflow run --help`: no flow named
    if named is None or wants_help:
        _run_help(ctx, named, wants_help)
        return

    def go() -> None:
        from aflow.cli.flow_args import parse_flow_args, split_config_args

        flow_cls = _load_for_run(flow_file)
        rest, config_files, config_values = split_config_args(flow_cls, list(ctx.args))
        params = parse_flow_args(flow_cls, rest)
        options = _options_of(max_workers, datastore, datastore_root, with_, tag, max_num_splits)
        options.update(branch=branch, production=production)
        options.update(config_files=config_files, config_values=config_values)
        if _run_blocking(flow_cls, params, options, run_id_file, quiet) != "done":
            raise typer.Exit(1)

    guarded(go)


RESUME_HELP = """Resume a run: reuse what it finished, run the rest (or from STEP on).

Unlike Metaflow, aflow also reruns every step whose source code changed since the origin run
(and the steps after it), so a fix to a step that succeeded takes effect; Metaflow reuses such
steps as they were. --clone-changed does what Metaflow does. Without --origin-run-id the origin
is the latest run started with `run` (not an earlier resume), as in Metaflow; aflow says which.
"""


@app.command(help=RESUME_HELP)
def resume(
    flow_file: FlowFile,
    step: Annotated[
        str | None, typer.Argument(help="Rerun from this step (default: where it failed).")
    ] = None,
    origin_run_id: Annotated[
        str | None, typer.Option(help="The run to resume (default: the latest).")
    ] = None,
    max_workers: MaxWorkers = 16,
    datastore: Datastore = None,
    datastore_root: DatastoreRoot = None,
    run_id_file: RunIdFile = None,
    quiet: Quiet = False,
    with_: With = None,
    tag: Tags = None,
    max_num_splits: MaxNumSplits = None,
    branch: Branch = None,
    production: Production = False,
    clone_changed: Annotated[
        bool,
        typer.Option(
            "--clone-changed",
            help="Reuse the finished tasks of steps whose code changed, as Metaflow does.",
        ),
    ] = False,
) -> None:
    def go() -> None:
        flow_cls = _load_for_run(flow_file)
        options = _options_of(max_workers, datastore, datastore_root, with_, tag, max_num_splits)
        options.update(branch=branch, production=production, clone_changed=clone_changed)
        origin = origin_run_id or _default_origin(flow_cls.__name__, datastore, datastore_root)
        options.update(resume=True, origin_run_id=origin, resume_step=step)
        if _run_blocking(flow_cls, {}, options, run_id_file, quiet) != "done":
            raise typer.Exit(1)

    guarded(go)


def _default_origin(flow: str, datastore: str | None, datastore_root: str | None) -> str | None:
    """The run `resume` picks when none is named, said out loud."""
    import anyio

    from aflow.engine.resume import latest_run_id
    from aflow.stores.factory import open_store

    async def find() -> str | None:
        store = open_store(datastore, datastore_root)
        try:
            return await latest_run_id(store, flow, started_by_run=True)
        finally:
            await store.aclose()

    found = anyio.run(find)
    if found is not None:
        typer.echo(
            f"Resuming {flow}/{found}: the latest run started with `run` "
            "(--origin-run-id picks another)",
            err=True,
        )
    return found


def _load_for_run(flow_file: Path) -> type[FlowSpec]:
    from aflow.backends.local import prestart

    prestart(str(flow_file))  # the task launcher warms up while we load and check the flow
    return load_flow(flow_file)


def _options_of(
    max_workers: int,
    datastore: str | None,
    datastore_root: str | None,
    with_: list[str] | None,
    tags: list[str] | None,
    max_num_splits: int | None,
) -> dict[str, Any]:
    return {
        "max_workers": max_workers,
        "datastore": datastore,
        "datastore_root": datastore_root,
        "with_decorators": with_ or [],
        "tags": tags or [],
        "max_num_splits": max_num_splits,
    }


def _run_help(ctx: typer.Context, flow_file: Path | None, asked: bool) -> None:
    typer.echo(ctx.get_help())
    if flow_file is None:
        if not asked:
            typer.echo("\nerror: which flow? give the flow file: aflow run flow.py", err=True)
            raise typer.Exit(2)
        return

    def go() -> None:
        from aflow.cli.flow_args import describe_parameters

        flow_cls = load_flow(flow_file)
        listing = describe_parameters(flow_cls)
        typer.echo(f"\nParameters of {flow_cls.__name__}:\n{listing or '  (none)'}")

    guarded(go)


def _run_blocking(
    flow_cls: type[FlowSpec],
    params: dict[str, Any],
    options: dict[str, Any],
    run_id_file: Path | None,
    quiet: bool,
) -> str:
    import anyio

    from aflow.cli.output import RunPrinter
    from aflow.engine.events import RunFinished
    from aflow.engine.runner import start_flow
    from aflow.exception import first_error

    printer = RunPrinter(quiet=quiet)
    stopped_by: list[signal.Signals] = []

    async def watch_signals(run_scope: anyio.CancelScope) -> None:
        # Ctrl-C (SIGINT), `kill`/`timeout`/container stops (SIGTERM) and a closed terminal or SSH
        # session (SIGHUP) all stop the run the same way: every task stopped, the run recorded
        # as cancelled. The receiver lives until the run is fully stopped, so a second signal
        # while the tasks stop is answered with a line, never with a KeyboardInterrupt traceback.
        with anyio.open_signal_receiver(signal.SIGINT, signal.SIGTERM, signal.SIGHUP) as signals:
            async for sig in signals:
                if sig == signal.SIGHUP:
                    _detach_from_terminal()
                if not stopped_by:
                    stopped_by.append(signal.Signals(sig))
                    run_scope.cancel()
                elif sig != signal.SIGHUP:
                    typer.echo("stopping already: waiting for the tasks to stop", err=True)

    async def main() -> str:
        running = None
        async with anyio.create_task_group() as watcher:
            run_scope = anyio.CancelScope()
            watcher.start_soon(watch_signals, run_scope)
            with run_scope:
                async with start_flow(flow_cls, params, **options) as running:
                    if run_id_file is not None:
                        await anyio.Path(run_id_file).write_text(running.run_id)
                    async for event in running.events():
                        if isinstance(event, RunFinished):
                            printer.finish(event)
                        else:
                            printer.handle(event)
            status = (await running.wait()).status if running is not None else "cancelled"
            watcher.cancel_scope.cancel()
        return status

    try:
        status = anyio.run(main)
    except KeyboardInterrupt:
        if not stopped_by:
            raise
        status = "cancelled"  # a second Ctrl-C just as the stopped run finished stopping
    except BaseExceptionGroup as group:
        raise first_error(group) from None
    finally:
        if stopped_by:
            # The run is stopped and we are leaving: a further signal (the signal receiver is
            # gone, so it would be Python's default) must not kill us before the exit code.
            for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
                signal.signal(sig, signal.SIG_IGN)
        with contextlib.suppress(OSError):
            sys.stdout.flush()
    if stopped_by:
        sig = stopped_by[0]
        how = {signal.SIGINT: "interrupted", signal.SIGHUP: "hung up (SIGHUP)"}.get(sig, "terminated")
        typer.echo(f"{how}: every task was stopped and the run recorded as cancelled", err=True)
        raise typer.Exit(128 + sig)
    return status


def _detach_from_terminal() -> None:
    """The terminal is gone: writing to it would fail (EIO) halfway through stopping the run."""
    devnull = os.open(os.devnull, os.O_WRONLY)
    for fd in (1, 2):
        with contextlib.suppress(OSError):
            os.dup2(devnull, fd)
    os.close(devnull)


@app.command(help="Check the flow's graph without running it.")
def check(flow_file: FlowFile) -> None:
    def go() -> None:
        from aflow.graph import graph_for

        flow_cls = load_flow(flow_file)
        graph = graph_for(flow_cls).check()
        typer.echo(f"{flow_cls.__name__}: {len(graph.nodes)} steps, graph is valid.")

    guarded(go)


@app.command(help="Show what the flow's code package holds (what remote steps will get).")
def package(
    flow_file: FlowFile,
    include: Annotated[
        list[str] | None,
        typer.Option(help="Also include files matching this pattern (as AFLOW_PACKAGE_INCLUDE)."),
    ] = None,
    exclude: Annotated[
        list[str] | None, typer.Option(help="Leave out files matching this pattern.")
    ] = None,
    files: Annotated[bool, typer.Option("--files", help="List every file.")] = False,
) -> None:
    def go() -> None:
        from aflow.engine.packaging import WHY_AFLOW, build_package, env_patterns

        load_flow(flow_file)
        built = build_package(
            flow_file,
            [*env_patterns("AFLOW_PACKAGE_INCLUDE"), *(include or [])],
            [*env_patterns("AFLOW_PACKAGE_EXCLUDE"), *(exclude or [])],
            survey=True,
        )
        own = [f for f in built.files if built.why.get(f) != WHY_AFLOW]
        typer.echo(
            f"code package {built.digest[:16]}: {len(built.files)} files "
            f"({len(own)} of the flow's, the rest aflow), {built.size / 1024:.0f} KiB"
        )
        for name in own if not files else built.files:
            typer.echo(f"  {name}  ({built.why.get(name, '')})")
        if built.left_out:
            typer.echo(
                "left out (neither imported nor included; add with --include or AFLOW_PACKAGE_INCLUDE):"
            )
            shown = built.left_out if files else built.left_out[:20]
            for name in shown:
                typer.echo(f"  {name}")
            if len(shown) < len(built.left_out):
                typer.echo(f"  ... and {len(built.left_out) - len(shown)} more (--files lists all)")
        for name, why in built.skipped:
            typer.echo(f"  skipped {name}: {why}")
        for warning in built.warnings:
            typer.echo(f"warning: {warning}", err=True)

    guarded(go)


@app.command("output-dot", help="Print the flow's graph in graphviz dot (Metaflow's output-dot).")
def output_dot(flow_file: FlowFile) -> None:
    def go() -> None:
        from aflow.cli.inspect import GraphFormat, render_graph
        from aflow.graph import graph_for

        flow_cls = load_flow(flow_file)
        typer.echo(render_graph(flow_cls.__name__, graph_for(flow_cls).to_dict(), GraphFormat.dot))

    guarded(go)


@app.command("output-raw", help="Print the flow's graph as JSON (Metaflow's output-raw).")
def output_raw(flow_file: FlowFile) -> None:
    def go() -> None:
        import json

        from aflow.graph import graph_for

        flow_cls = load_flow(flow_file)
        typer.echo(json.dumps(graph_for(flow_cls).to_dict(), indent=2, default=str))

    guarded(go)


def _no_scheduler(command: str) -> None:
    @app.command(
        name=command,
        context_settings={"allow_extra_args": True, "ignore_unknown_options": True},
        help=f"Not available: aflow has no production scheduler ({command}).",
    )
    def refuse(ctx: typer.Context) -> None:
        typer.echo(
            f"aflow cannot deploy to a production scheduler ({command} {' '.join(ctx.args)}): "
            "it runs flows itself (aflow run / python flow.py run). @schedule, @trigger and "
            "@trigger_on_finish are recorded with each run but trigger nothing; run the flow "
            "from your own scheduler (cron, CI, Airflow) with `python flow.py run` instead.",
            err=True,
        )
        raise typer.Exit(2)


for _command in SCHEDULERS:
    _no_scheduler(_command)

# The other commands register themselves on `app` (from cli/common.py) when imported.
from aflow.cli import cards as _cards  # noqa: E402, F401
from aflow.cli import doctor as _doctor  # noqa: E402, F401
from aflow.cli import dump as _dump  # noqa: E402, F401
from aflow.cli import inspect as _inspect  # noqa: E402, F401
from aflow.cli import ui as _ui  # noqa: E402, F401
from aflow.cli import verify as _verify  # noqa: E402, F401
