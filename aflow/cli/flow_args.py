"""Reading a flow's Parameters from the rest of the command line: `--name value`, `--name=value`,
`--flag` / `--no-flag` / `--flag False` for booleans, a repeated option for `multiple=True`, and
`--config NAME FILE` / `--config-value NAME JSON` for its Configs."""

from __future__ import annotations

from typing import Any

from aflow.exception import ParameterError
from aflow.flowspec import FlowSpec
from aflow.parameters import _FALSE, _TRUE, Parameter, flow_parameters

CONFIG_OPTIONS = ("--config", "--config-value")
# What `--config ...` written before the command becomes once moved after it (toplevel.py): a
# config then, even when the flow has a parameter named `config`.
MOVED_CONFIG_OPTIONS = {"--aflow-config": "--config", "--aflow-config-value": "--config-value"}


def _lookup(params: dict[str, Parameter], option: str) -> Parameter | None:
    wanted = option.replace("-", "_")
    for attr, p in params.items():
        if wanted in (attr, p.name.replace("-", "_")):
            return p
    return None


def split_config_args(
    flow_cls: type[FlowSpec], args: list[str]
) -> tuple[list[str], dict[str, str], dict[str, str]]:
    """Take `--config NAME FILE` and `--config-value NAME JSON` out of the arguments, unless the
    flow has a parameter of that name (then it is the parameter's)."""
    params = {a: p for a, p in flow_parameters(flow_cls).items() if p.type_name != "config"}
    rest: list[str] = []
    files: dict[str, str] = {}
    values: dict[str, str] = {}
    i = 0
    while i < len(args):
        arg = MOVED_CONFIG_OPTIONS.get(args[i], args[i])
        if (arg in CONFIG_OPTIONS and _lookup(params, arg[2:]) is None) or args[i] in (
            MOVED_CONFIG_OPTIONS
        ):
            if i + 2 >= len(args):
                what = "FILE" if arg == "--config" else "JSON"
                raise ParameterError(f"{arg} takes two values: {arg} NAME {what}")
            (files if arg == "--config" else values)[args[i + 1]] = args[i + 2]
            i += 3
            continue
        rest.append(arg)
        i += 1
    return rest, files, values


def parse_flow_args(flow_cls: type[FlowSpec], args: list[str]) -> dict[str, Any]:
    params = {a: p for a, p in flow_parameters(flow_cls).items() if p.type_name != "config"}
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
                # `--flag`, or Metaflow's `--flag True` / `--flag false`
                if i < len(args) and args[i].strip().lower() in _TRUE | _FALSE:
                    given[p.attr_name] = args[i]
                    i += 1
                else:
                    given[p.attr_name] = True
                continue
            if i >= len(args):
                raise ParameterError(f"--{option} needs a value")
            value = args[i]
            i += 1
        if p.multiple:
            given.setdefault(p.attr_name, []).append(value)
        else:
            given[p.attr_name] = value
    return given


def describe_parameters(flow_cls: type[FlowSpec]) -> str:
    lines = []
    for p in flow_parameters(flow_cls).values():
        default = "" if p.default is None or not p.show_default else f" [default: {p.default!r}]"
        if callable(p.default):
            default = " [default: computed when the run starts]"
        need = " (required)" if p.required else ""
        option = f"--{p.name}/--no-{p.name}" if p.is_flag else f"--{p.name} {p.type_name.upper()}"
        if p.type_name == "config":
            option = f"--config {p.name} FILE"
        elif p.multiple:
            option += " (repeatable)"
        lines.append(f"  {option:<28} {p.help or ''}{default}{need}")
    return "\n".join(lines)
