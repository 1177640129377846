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
    """`python flow.py run ...`: the Metaflow habit of a flow file that is its own command line."""
    from aflow.cli.app import app, preload

    file = os.path.abspath(sys.argv[0])
    preload(file, flow_cls)
    args = sys.argv[1:]
    if args and not args[0].startswith("-"):
        args = [args[0], file, *args[1:]]
    app(args=args, prog_name=f"python {os.path.basename(file)}")
