"""The command line: `aflow <command> flow.py ...` and `python flow.py <command> ...`.

A thin layer over the engine and the store; nothing below it imports it.
"""

from __future__ import annotations

import os
import sys

from aflow.flowspec import FlowSpec


def main() -> None:
    from aflow.cli.app import app

    app(prog_name="aflow")


def run_flow_cli(flow_cls: type[FlowSpec]) -> None:
    """`python flow.py run ...`: the Metaflow habit of a flow file that is its own command line.

    The file goes where `aflow` expects it, right after the command's name, which may be a command
    of a group: `python flow.py list runs` is `aflow list runs flow.py`.
    """
    import typer.main

    from aflow.cli.app import app, preload

    file = os.path.abspath(sys.argv[0])
    preload(file, flow_cls)
    args = sys.argv[1:]
    command = typer.main.get_command(app)
    at = 0
    while at < len(args) and args[at].startswith("-"):
        at += 1  # options of aflow itself (--debug)
    named = False
    while at < len(args) and args[at] in getattr(command, "commands", {}):
        command, at, named = command.commands[args[at]], at + 1, True  # type: ignore[attr-defined]
    if named and not hasattr(command, "commands"):
        args = [*args[:at], file, *args[at:]]
    app(args=args, prog_name=f"python {os.path.basename(file)}")
