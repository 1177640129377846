"""`Parameter`: a flow's run-time inputs, given on the command line or to `run_flow(params=...)`.

A Parameter is a class attribute of the flow. Inside a running task it reads as the run's value (an
ordinary artifact every task inherits) and cannot be assigned. This module only converts and checks
values; the CLI and the runner decide where they come from.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

from aflow.exception import ParameterError

_MISSING: Any = object()


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
        required: bool = False,
        show_default: bool = True,
        **_ignored: Any,
    ) -> None:
        self.name = name
        self.default = default
        self.required = required
        self.help = help
        self.show_default = show_default
        if type is None:
            type = _type_of_default(default)
        self.type = _to_bool if type is bool else type
        self.is_flag = type is bool
        self.attr_name = name

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
        return getattr(self.type, "name", None) or getattr(self.type, "__name__", "value")

    def convert(self, raw: Any) -> Any:
        """Turn a command-line string (or a Python value) into the parameter's type."""
        if self.type is str or raw is None:
            return raw if raw is None or not isinstance(raw, bytes) else raw.decode()
        try:
            return self.type(raw)
        except (ValueError, TypeError) as e:
            raise ParameterError(
                f"parameter '{self.name}': cannot read {raw!r} as {self.type_name}: {e}"
            ) from None

    def resolve(self, given: dict[str, Any]) -> Any:
        """The value for a run: the given one, else the default; an error when required and absent."""
        for key in (self.name, self.attr_name, self.name.replace("-", "_")):
            if key in given:
                return self.convert(given[key])
        if self.default is _MISSING or self.default is None:
            if self.required:
                raise ParameterError(f"parameter '{self.name}' is required: pass --{self.name} VALUE")
            return None
        default = self.default() if callable(self.default) else self.default
        return self.convert(default) if isinstance(default, str) else default


def _type_of_default(default: Any) -> Callable[[Any], Any]:
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
        **_ignored: Any,
    ) -> None:
        super().__init__(name, default=default, type=str, help=help, required=required)
        self.is_text = is_text
        self.encoding = encoding

    @property
    def type_name(self) -> str:
        return "path"

    def resolve(self, given: dict[str, Any]) -> Any:
        path = super().resolve(given)
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
