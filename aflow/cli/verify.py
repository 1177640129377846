"""`aflow verify [FLOW[/RUN]]`: check every record and blob of a run, a flow or the whole store
(aflow.stores.verify does the walking), print what is damaged or missing, and with --quarantine
move damaged files aside. Exit 0 when nothing is damaged or missing, 1 otherwise."""

from __future__ import annotations

from typing import Annotated

import typer

from aflow.cli.common import app
from aflow.cli.options import Datastore, DatastoreRoot
from aflow.cli.reading import command_store, flow_of, run_async
from aflow.stores.verify import Finding, verify_store


def _split(target: str) -> tuple[str, str]:
    """FLOW or FLOW/RUN, where FLOW is a name or a file (`dir/flow.py/RUN` works too)."""
    if ".py/" in target:
        head, _, run_id = target.rpartition("/")
        return head, run_id
    if target.endswith(".py"):
        return target, ""
    head, _, run_id = target.partition("/")
    return head, run_id


def _say(finding: Finding) -> None:
    owner = f" ({finding.owner})" if finding.owner else ""
    typer.echo(f"{finding.kind}: {finding.path}: {finding.reason}{owner}")
    if finding.moved_to:
        typer.echo(f"  moved to {finding.moved_to}")


@app.command(help="Check the store's records and blobs (a run, a flow, or everything): an fsck.")
def verify(
    target: Annotated[
        str | None,
        typer.Argument(
            metavar="[FLOW[/RUN]]",
            help="A flow (its file or name), optionally /RUN_ID; omit for the whole store.",
        ),
    ] = None,
    quarantine: Annotated[
        bool,
        typer.Option(
            "--quarantine",
            help="Move damaged files to <root>/.quarantine/ (local store): readers then see them as "
            "missing, a resume redoes a task whose record was damaged, and a run producing the same "
            "value stores a damaged blob again.",
        ),
    ] = False,
    datastore: Datastore = None,
    datastore_root: DatastoreRoot = None,
) -> None:
    async def go() -> bool:
        store = command_store(datastore, datastore_root)
        flow = run_id = None
        if target:
            head, run_id = _split(target)
            flow = flow_of(head)[0]
        report = await verify_store(store, flow, run_id or None, quarantine, _say)
        bad = [f for f in report.findings if f.kind != "incomplete"]
        typer.echo(
            f"checked {report.records} records and {report.blobs} blobs "
            f"({report.blob_bytes / 2**20:.1f} MiB) in {store.url}: "
            + (f"{len(bad)} damaged or missing" if bad else "all intact")
        )
        if bad and not quarantine:
            typer.echo("`aflow verify --quarantine` moves damaged files aside", err=True)
        return report.ok

    if not run_async(go):
        raise typer.Exit(1)
