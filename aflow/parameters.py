"""`Parameter`: a flow's run-time inputs, given on the command line or to `run_flow(params=...)`.

A Parameter is a class attribute of the flow. Inside a running task it reads as the run's value (an
ordinary artifact every task inherits) and cannot be assigned. This module only converts and checks
values; the CLI and the runner decide where they come from.
"""

from __future__ import annotations

import inspect
import json
import os
from collections.abc import Callable
from typing import Any, NamedTuple

from aflow.exception import ParameterError
from aflow.run_configs import Deferred, active_configs
from aflow.stores.settings import StoreSettings

_MISSING: Any = object()


class ParameterContext(NamedTuple):
    """What a callable default is given (`default=lambda ctx: ctx.user_name`), as in Metaflow."""

    flow_name: str
    user_name: str | None = None
    parameter_name: str | None = None
    logger: Callable[..., None] = print
    ds_type: str | None = None
    configs: Any = None


def _call_default(fn: Callable[..., Any], ctx: ParameterContext) -> Any:
    """A function default: called with the context if it takes an argument (Metaflow's kind)."""
    try:
        takes = [
            p
            for p in inspect.signature(fn).parameters.values()
            if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD, p.VAR_POSITIONAL)
        ]
    except (TypeError, ValueError):
        return fn(ctx)  # no signature to read (a builtin): assume it takes the context
    return fn(ctx) if takes else fn()


# Parameter keywords of Metaflow's that aflow does not implement are refused, never ignored.
_KNOWN = {"name", "default", "type", "help", "required", "show_default", "multiple", "separator"}


class JSONTypeClass:
    """A parameter type that parses its command-line value as JSON (Metaflow's `JSONType`)."""

    name = "JSON"

    def __call__(self, raw: Any) -> Any:
        if not isinstance(raw, str):
            return raw
        try:
            return json.loads(raw)
        except json.JSONDecodeError as e:
            raise ValueError(f"not valid JSON ({e.msg} at column {e.colno})") from None


JSONType = JSONTypeClass()

_TRUE = {"1", "true", "yes", "y", "on"}
_FALSE = {"0", "false", "no", "n", "off"}


def _to_bool(raw: Any) -> bool:
    if isinstance(raw, bool):
        return raw
    text = str(raw).strip().lower()
    if text in _TRUE:
        return True
    if text in _FALSE:
        return False
    raise ValueError("expected true or false")


class Parameter:
    """A named input of the flow: `alpha = Parameter("alpha", default=0.5, help="...")`."""

    def __init__(
        self,
        name: str,
        default: Any = _MISSING,
        type: Callable[[Any], Any] | None = None,
        help: str | None = None,
        required: bool | None = False,
        show_default: bool | None = True,
        multiple: bool = False,
        separator: str | None = None,
        **unsupported: Any,
    ) -> None:
        if separator and type not in (None, str):
            raise ParameterError(
                f"Parameter '{name}': separator= splits a string value into a list, so the "
                "parameter's type must be str"
            )
        self.separator = separator
        if unsupported:
            raise ParameterError(
                f"Parameter '{name}': aflow does not implement "
                f"{', '.join(f'{k}=' for k in sorted(unsupported))} "
                f"(it takes {', '.join(sorted(_KNOWN - {'name'}))})"
            )
        self.name = name
        self.default = default
        self.required = bool(required)
        self.help = help
        self.show_default = show_default is not False
        self.multiple = multiple
        self._type_given = type
        self._set_type(type if type is not None else _type_of_default(default, multiple))
        self.attr_name = name

    def _infer_type(self, default: Any) -> None:
        """Typed by a default known only at run time, as when the default is a plain value."""
        if self._type_given is None and default is not None:
            self._set_type(_type_of_default(default, self.multiple))

    def _set_type(self, type: Callable[[Any], Any]) -> None:
        self.type = _to_bool if type is bool else type
        self.is_flag = type is bool and not self.multiple

    def __set_name__(self, owner: type, attr_name: str) -> None:
        self.attr_name = attr_name

    def __get__(self, instance: Any, owner: type | None = None) -> Any:
        if instance is None:
            return self
        return instance._aflow_artifact(self.attr_name)

    def __set__(self, instance: Any, value: Any) -> None:
        raise AttributeError(
            f"parameter '{self.name}' is read-only: assign to another attribute instead"
        )

    def __delete__(self, instance: Any) -> None:
        raise AttributeError(f"parameter '{self.name}' is read-only: it cannot be deleted")

    @property
    def type_name(self) -> str:
        if self.is_flag:
            return "bool"
        return str(getattr(self.type, "name", None) or getattr(self.type, "__name__", "value"))

    def convert(self, raw: Any) -> Any:
        """Turn a command-line string (or a Python value) into the parameter's type; with
        `multiple=True`, each of a list of them."""
        if self.multiple and isinstance(raw, (list, tuple)):
            return [self._convert_one(r) for r in raw]
        return self._convert_one(raw)

    def _convert_one(self, raw: Any) -> Any:
        if self.type is str or raw is None:
            return raw if raw is None or not isinstance(raw, bytes) else raw.decode()
        try:
            return self.type(raw)
        except (ValueError, TypeError) as e:
            raise ParameterError(
                f"parameter '{self.name}': cannot read {raw!r} as {self.type_name}: {e}"
            ) from None

    def context(self, flow_name: str) -> ParameterContext:
        return ParameterContext(
            flow_name=flow_name,
            user_name=os.environ.get("USER") or os.environ.get("USERNAME"),
            parameter_name=self.name,
            ds_type=StoreSettings.from_env().default_datastore,
            configs=active_configs(),
        )

    @property
    def environment_variables(self) -> tuple[str, str]:
        """Where a default may come from when the command line gives none: aflow's variable,
        then Metaflow's (so deployments that set it keep working)."""
        name = self.name.upper().replace("-", "_")
        return f"AFLOW_RUN_{name}", f"METAFLOW_RUN_{name}"

    def resolve(self, given: dict[str, Any], ctx: ParameterContext | None = None) -> Any:
        """The value for a run: the given one, else AFLOW_RUN_<NAME> / METAFLOW_RUN_<NAME>, else
        the default; with `separator=`, a string value split into a list."""
        if not any(k in given for k in (self.name, self.attr_name, self.name.replace("-", "_"))):
            env = next((os.environ[v] for v in self.environment_variables if v in os.environ), None)
            if env is not None:
                given = {**given, self.name: env}
        value = self._resolve(given, ctx)
        if self.separator and isinstance(value, str):
            value = value.split(self.separator)
        return value

    def _resolve(self, given: dict[str, Any], ctx: ParameterContext | None = None) -> Any:
        """The given value, else the default; an error when required and absent. A default may
        be a function (called with a ParameterContext) or a config expression."""
        default = self.default
        if isinstance(default, Deferred):  # a Config's value, known now
            default = default()
            self._infer_type(default)
        for key in (self.name, self.attr_name, self.name.replace("-", "_")):
            if key in given:
                value = given[key]
                if self.multiple and not isinstance(value, (list, tuple)):
                    value = [value]
                return self.convert(value)
        if callable(default) and not isinstance(default, type):
            default = _call_default(default, ctx or self.context(""))
            self._infer_type(default)
        if default is _MISSING or default is None:
            if self.required:
                raise ParameterError(f"parameter '{self.name}' is required: pass --{self.name} VALUE")
            return [] if self.multiple else None
        if self.multiple:
            items = list(default) if isinstance(default, (list, tuple)) else [default]
            return [self._convert_one(i) if isinstance(i, str) else i for i in items]
        return self.convert(default) if isinstance(default, str) else default


def _type_of_default(default: Any, multiple: bool = False) -> Callable[[Any], Any]:
    if multiple and isinstance(default, (list, tuple)):
        default = default[0] if default else None
    if default is _MISSING or default is None or callable(default):
        return str
    if isinstance(default, bool):
        return bool
    if isinstance(default, (int, float)):
        return type(default)
    if isinstance(default, (dict, list)):
        return JSONType
    return str


def flow_parameters(flow_cls: type) -> dict[str, Parameter]:
    """The flow's parameters by attribute name, base classes included."""
    found: dict[str, Parameter] = {}
    for klass in reversed(flow_cls.__mro__):
        for attr, value in vars(klass).items():
            if isinstance(value, Parameter):
                found[attr] = value
    return found


class IncludeFile(Parameter):
    """A parameter whose value is the content of a file: `--data path/to/file.csv`.

    The file is read when the run starts and its content stored once, as an artifact of the run,
    so every step (local or remote) sees the same bytes without needing the file.
    """

    def __init__(
        self,
        name: str,
        default: Any = _MISSING,
        is_text: bool = True,
        encoding: str = "utf-8",
        help: str | None = None,
        required: bool = False,
        show_default: bool = True,
    ) -> None:
        super().__init__(
            name, default=default, type=str, help=help, required=required, show_default=show_default
        )
        self.is_text = is_text
        self.encoding = encoding

    @property
    def type_name(self) -> str:
        return "path"

    def resolve(self, given: dict[str, Any], ctx: ParameterContext | None = None) -> Any:
        path = super().resolve(given, ctx)
        if path is None:
            return None
        try:
            with open(path, "rb") as f:
                data = f.read()
        except OSError as e:
            raise ParameterError(f"parameter '{self.name}': cannot read {path}: {e.strerror}") from None
        if not self.is_text:
            return data
        try:
            return data.decode(self.encoding)
        except UnicodeDecodeError as e:
            raise ParameterError(
                f"parameter '{self.name}': {path} is not {self.encoding} text ({e.reason}); "
                "pass is_text=False to include it as bytes"
            ) from None
