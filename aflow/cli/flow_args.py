"""Reading a flow's Parameters from the rest of the command line: `--name value`, `--name=value`,
and `--flag` / `--no-flag` for booleans."""

from __future__ import annotations

from typing import Any

from aflow.exception import ParameterError
from aflow.flowspec import FlowSpec
from aflow.parameters import Parameter, flow_parameters


def _lookup(params: dict[str, Parameter], option: str) -> Parameter | None:
    wanted = option.replace("-", "_")
    for attr, p in params.items():
        if wanted in (attr, p.name.replace("-", "_")):
            return p
    return None


def parse_flow_args(flow_cls: type[FlowSpec], args: list[str]) -> dict[str, Any]:
    params = flow_parameters(flow_cls)
    given: dict[str, Any] = {}
    i = 0
    while i < len(args):
        arg = args[i]
        i += 1
        if not arg.startswith("--") or arg == "--":
            raise ParameterError(f"unexpected argument {arg!r}: flow parameters go as --name value")
        option, has_value, value = arg[2:].partition("=")
        p = _lookup(params, option)
        if p is None and option.startswith("no-"):
            negated = _lookup(params, option[3:])
            if negated is not None and negated.is_flag:
                given[negated.attr_name] = False
                continue
        if p is None:
            have = ", ".join(f"--{q.name}" for q in params.values()) or "none"
            raise ParameterError(
                f"{flow_cls.__name__} has no parameter --{option} (its parameters: {have})"
            )
        if not has_value:
            if p.is_flag:
                given[p.attr_name] = True
                continue
            if i >= len(args):
                raise ParameterError(f"--{option} needs a value")
            value = args[i]
            i += 1
        given[p.attr_name] = value
    return given


def describe_parameters(flow_cls: type[FlowSpec]) -> str:
    lines = []
    for p in flow_parameters(flow_cls).values():
        default = "" if p.default is None or not p.show_default else f" [default: {p.default!r}]"
        need = " (required)" if p.required else ""
        option = f"--{p.name}/--no-{p.name}" if p.is_flag else f"--{p.name} {p.type_name.upper()}"
        lines.append(f"  {option:<28} {p.help or ''}{default}{need}")
    return "\n".join(lines)
