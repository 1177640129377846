"""Options written before the command, Metaflow's habit: `python flow.py --with retry run`.

aflow's own options belong to its commands; these are moved to just after the command (and the
flow file), where the command reads them. Options that mean nothing to aflow are dropped with a
note. Anything else before the command is left where it is, for the command line to judge.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass


@dataclass(frozen=True)
class TopLevel:
    values: int  # how many values follow the option
    # "keep" (aflow's own top-level option), "move" (to the command), "offer" (to the command if
    # it takes it, else dropped), "ignore" (dropped, with the note if there is one)
    action: str
    note: str = ""


TOP_LEVEL: dict[str, TopLevel] = {
    "--debug": TopLevel(0, "keep"),
    "--environment": TopLevel(1, "keep"),
    "--with": TopLevel(1, "move"),
    "--datastore": TopLevel(1, "move"),
    "--datastore-root": TopLevel(1, "move"),
    "--config": TopLevel(2, "move"),
    "--config-value": TopLevel(2, "move"),
    "--branch": TopLevel(1, "move"),
    "--production": TopLevel(0, "move"),
    "--quiet": TopLevel(0, "offer"),
    "--no-pylint": TopLevel(0, "ignore"),  # aflow runs no linter before a run
    "--pylint": TopLevel(0, "ignore"),
    "--metadata": TopLevel(
        1, "ignore", "aflow keeps run metadata in its datastore: --metadata is ignored"
    ),
    "--package-suffixes": TopLevel(
        1, "ignore", "--package-suffixes is ignored: see AFLOW_PACKAGE_INCLUDE (aflow package --help)"
    ),
}


def split_top_level(args: list[str]) -> tuple[list[str], list[str], list[str]]:
    """(options kept in front, options for the command, the rest from the command on)."""
    front: list[str] = []
    moved: list[str] = []
    at = 0
    while at < len(args) and args[at].startswith("-"):
        option, eq, _ = args[at].partition("=")
        spec = TOP_LEVEL.get(option)
        if spec is None:
            front.append(args[at])
            at += 1
            continue
        taken = args[at : at + (1 if eq else 1 + spec.values)]
        at += len(taken)
        if spec.action == "keep":
            front.extend(taken)
        elif spec.action in ("move", "offer"):
            if option in ("--config", "--config-value") and not eq:
                # A config, even if the flow has a parameter named `config` (flow_args.py).
                taken = [f"--aflow-{option[2:]}", *taken[1:]]
            moved.extend(taken)
        elif spec.note:
            print(f"note: {spec.note}", file=sys.stderr)
    return front, moved, args[at:]


def arrange(command: object, argv: list[str], file: str | None) -> list[str]:
    """The command line with options given before the command moved after it, and the flow
    file (for `python flow.py <command>`) right after the command's name."""
    front, moved, args = split_top_level(argv)
    if "--debug" in args:  # aflow's own switch, also where people type it: after the command
        args = [a for a in args if a != "--debug"]
        front = ["--debug", *front]
    at = 0
    named = False
    while at < len(args) and args[at] in getattr(command, "commands", {}):
        command, at, named = command.commands[args[at]], at + 1, True  # type: ignore[attr-defined]
    takes = {o for p in getattr(command, "params", []) for o in getattr(p, "opts", [])}
    offered = {o for o, spec in TOP_LEVEL.items() if spec.action == "offer"}
    moved = [m for m in moved if m not in offered or m in takes]
    if file is not None and named and not hasattr(command, "commands"):
        return [*front, *args[:at], file, *moved, *args[at:]]
    return [*front, *args, *moved]  # after the command's own arguments (the flow file first)
