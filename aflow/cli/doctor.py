"""`aflow doctor --kubernetes`: check a set-up for remote steps end to end on the user's own
cluster (aflow.backends.k8s.doctor does the checking), printing each check as it ends and, for a
failure, what to do. Exit 0 when every check passed, 1 otherwise."""

from __future__ import annotations

from typing import Annotated

import anyio
import typer

from aflow.cli.common import app
from aflow.cli.options import Datastore, DatastoreRoot


@app.command(help="Check a Kubernetes set-up for @kubernetes end to end (creates a few small Jobs).")
def doctor(
    kubernetes: Annotated[
        bool,
        typer.Option(
            "--kubernetes",
            help="Check credentials, the namespace, RBAC permissions, the datastore, the image, "
            "a one-task run and its output, a 3-way foreach, and cancelling.",
        ),
    ] = False,
    namespace: Annotated[
        str | None,
        typer.Option(help="The namespace to check (else AFLOW_KUBERNETES_NAMESPACE, else default)."),
    ] = None,
    image: Annotated[
        str | None,
        typer.Option(help="The image to try (else AFLOW_KUBERNETES_IMAGE / AFLOW_DEFAULT_IMAGE)."),
    ] = None,
    timeout: Annotated[
        float, typer.Option(help="Seconds each test run may take (a first image pull is slow).")
    ] = 600.0,
    datastore: Datastore = None,
    datastore_root: DatastoreRoot = None,
) -> None:
    if not kubernetes:
        typer.echo("aflow doctor: say what to check: --kubernetes", err=True)
        raise typer.Exit(2)
    from aflow.install_hint import needs_extra

    try:
        from aflow.backends.k8s.doctor import Doctor, Finding
    except ImportError as e:
        typer.echo(f"{needs_extra('aflow doctor --kubernetes', 'k8s')} ({e})", err=True)
        raise typer.Exit(2) from None

    def say(finding: Finding) -> None:
        mark = {True: "ok  ", False: "FAIL", None: "warn"}[finding.ok]
        typer.echo(f"{mark} {finding.check}: {finding.said}")
        if finding.fix:
            typer.echo(f"     fix: {finding.fix}")

    async def go() -> bool:
        checks = Doctor(
            say,
            datastore=datastore,
            datastore_root=datastore_root,
            namespace=namespace,
            image=image,
            timeout=timeout,
        )
        return await checks.run()

    raise typer.Exit(0 if anyio.run(go) else 1)
