"""The command line: `aflow <command> flow.py ...` and `python flow.py <command> ...`.

A thin layer over the engine and the store; nothing below it imports it.
"""

from __future__ import annotations

import contextlib
import os
import sys
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from aflow.flowspec import FlowSpec


def _line_buffered() -> None:
    """Each line of a run's output goes out when printed, also into a pipe (`aflow run | tee`,
    a CI log, a parent process waiting for a line); Python would otherwise hold 8 KB back."""
    for stream in (sys.stdout, sys.stderr):
        reconfigure = getattr(stream, "reconfigure", None)
        if reconfigure is not None:
            with contextlib.suppress(ValueError, OSError):
                reconfigure(line_buffering=True)


def main() -> None:
    import typer.main

    from aflow.cli.app import app
    from aflow.cli.toplevel import arrange

    _line_buffered()
    app(args=arrange(typer.main.get_command(app), sys.argv[1:], None), prog_name="aflow")


def run_flow_cli(flow_cls: type[FlowSpec]) -> None:
    """`python flow.py run ...`: the Metaflow habit of a flow file that is its own command line.

    The file goes where `aflow` expects it, right after the command's name, which may be a command
    of a group: `python flow.py list runs` is `aflow list runs flow.py`.
    """
    import typer.main

    from aflow.cli.app import app
    from aflow.cli.common import preload
    from aflow.cli.toplevel import arrange

    file = os.path.abspath(sys.argv[0])
    _line_buffered()
    preload(file, flow_cls)
    args = arrange(typer.main.get_command(app), sys.argv[1:], file)
    app(args=args, prog_name=f"python {os.path.basename(file)}")
