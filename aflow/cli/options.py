"""Command-line options that several commands share (one definition, one help text)."""

from __future__ import annotations

from typing import Annotated

import typer

Datastore = Annotated[
    str | None,
    typer.Option(
        envvar="AFLOW_DEFAULT_DATASTORE",
        help="Where runs are stored: local (default), s3, azure or gs.",
        show_default=False,
    ),
]
DatastoreRoot = Annotated[
    str | None,
    typer.Option(
        envvar="AFLOW_DATASTORE_ROOT",
        help="The store's root: a folder (default ./.aflow), s3://bucket/prefix, az://container/"
        "prefix or gs://bucket/prefix (or AFLOW_DATASTORE_SYSROOT_S3/_AZURE/_GS).",
    ),
]
