"""`Config` and `config_expr`: a flow's configuration, read once when a run starts (Metaflow 2.13+).

A `Config` is a parameter whose value is a parsed file or value (JSON unless `parser=` says
otherwise), given as `--config NAME FILE` or `--config-value NAME JSON`, else its `default=` file,
else its `default_value=`. Before the run starts, its value is known, so it can be used where a
plain parameter cannot: in decorators (`@resources(cpu=config.cpu)`), in other parameters'
defaults, in `config_expr("...")` expressions. At class-definition time `config.cpu` is only a
`DelayEvaluator` that remembers the path; `resolve_delayed` turns it into the value once the run's
configs are `activate`d. Inside steps `self.config` is the value (a read-only `ConfigValue`, an
artifact of every task, stored with the run like any parameter).
"""

from __future__ import annotations

import collections.abc
import importlib
import inspect
import json
import os
import re
from collections.abc import Callable, Iterator, Mapping
from typing import Any

from aflow.exception import AflowException, ParameterError
from aflow.parameters import Parameter, ParameterContext, flow_parameters
from aflow.run_configs import Deferred, activate, active_configs

_IDENTIFIER = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
UNPACK_KEY = "_aflow_unpacked_config_"

class ConfigValue(collections.abc.Mapping[Any, Any]):
    """A configuration's value: a read-only mapping whose keys also read as attributes."""

    _data: dict[Any, Any]  # set once, by __init__ (__setattr__ refuses)

    def __init__(self, data: Mapping[Any, Any]) -> None:
        object.__setattr__(self, "_data", {k: _wrap(v) for k, v in data.items()})

    def __getattr__(self, key: str) -> Any:
        if key.startswith("__"):
            raise AttributeError(key)
        try:
            return self._data[key]
        except KeyError:
            raise AttributeError(
                f"the config has no key '{key}' (its keys: {', '.join(map(str, self._data))})"
            ) from None

    def __setattr__(self, name: str, value: Any) -> None:
        raise TypeError("a config value is read-only: copy it with to_dict() to change it")

    def __getitem__(self, key: Any) -> Any:
        return self._data[key]

    def __iter__(self) -> Iterator[Any]:
        return iter(self._data)

    def __len__(self) -> int:
        return len(self._data)

    def __eq__(self, other: object) -> bool:
        if isinstance(other, ConfigValue):
            return self._data == other._data
        return isinstance(other, dict) and self.to_dict() == other

    __hash__ = None  # type: ignore[assignment]

    def __repr__(self) -> str:
        return repr(self.to_dict())

    def __dir__(self) -> list[str]:
        return [
            *dir(type(self)),
            *(k for k in self._data if isinstance(k, str) and _IDENTIFIER.match(k)),
        ]

    def to_dict(self) -> dict[Any, Any]:
        """A plain (mutable) copy, nested mappings included."""
        return {k: _unwrap(v) for k, v in self._data.items()}

    def __reduce__(self) -> tuple[Any, ...]:
        return (ConfigValue, (self.to_dict(),))


def _wrap(value: Any) -> Any:
    if isinstance(value, ConfigValue):
        return value
    if isinstance(value, Mapping):
        return ConfigValue(value)
    if isinstance(value, (list, tuple)):
        return type(value)(_wrap(v) for v in value)
    return value


def _unwrap(value: Any) -> Any:
    if isinstance(value, Mapping):
        return {k: _unwrap(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return type(value)(_unwrap(v) for v in value)
    return value


class DelayEvaluator(collections.abc.Mapping[str, Any], Deferred):
    """An expression over the flow's configs, evaluated when the run's configs are known.

    `config.a.b` and `config["a"]` extend the path; `**config.env` unpacks (into a decorator's
    options) once evaluated; calling it evaluates it."""

    def __init__(self, expr: str, scope: dict[str, Any] | None = None, path: tuple[Any, ...] = ()):
        self._expr = expr
        self._scope = scope
        self._path = path

    def _extend(self, key: Any) -> DelayEvaluator:
        if not _IDENTIFIER.match(self._expr):
            raise AflowException(
                f"config_expr({self._expr!r}) is a whole expression: write the access inside it"
            )
        return DelayEvaluator(self._expr, self._scope, (*self._path, key))

    def __getattr__(self, name: str) -> DelayEvaluator:
        if name.startswith("_"):
            raise AttributeError(name)
        return self._extend(name)

    def __getitem__(self, key: Any) -> Any:
        if isinstance(key, str) and key == self._unpack_key:
            return self
        return self._extend(key)

    @property
    def _unpack_key(self) -> str:
        return f"{UNPACK_KEY}{id(self)}"

    def __iter__(self) -> Iterator[str]:
        yield self._unpack_key  # `**config.x`: one placeholder key, expanded when evaluated

    def __len__(self) -> int:
        return 1

    def __repr__(self) -> str:
        return f"config_expr({self.text!r})"

    @property
    def text(self) -> str:
        out = self._expr
        for key in self._path:
            out += f".{key}" if isinstance(key, str) and _IDENTIFIER.match(key) else f"[{key!r}]"
        return out

    def __call__(self, *_ignored: Any) -> Any:
        active = active_configs()
        if not active:
            raise AflowException(
                f"{self!r} is used before the run's configs are read: configs are known only "
                "once a run starts (use them in decorators, parameter defaults and steps)"
            )
        names = {n: _wrap(v) for n, v in active.items()}
        try:
            # The user's own expression, over their own configs, as Metaflow evaluates it.
            value = eval(self._expr, self._scope if self._scope is not None else {}, names)
            for key in self._path:
                key = resolve_delayed(key)
                value = value[key] if isinstance(value, Mapping) else getattr(value, key)
        except AflowException:
            raise
        except Exception as e:
            raise AflowException(f"{self!r} could not be evaluated: {type(e).__name__}: {e}") from None
        return value


def config_expr(expr: str) -> DelayEvaluator:
    """An expression over the flow's configs (`config_expr("config.lr * 2")`), evaluated when the
    run starts, with the caller's module globals in scope."""
    frame = inspect.currentframe()
    scope = frame.f_back.f_globals if frame is not None and frame.f_back is not None else {}
    return DelayEvaluator(expr, scope)


def is_delayed(value: Any) -> bool:
    if isinstance(value, (DelayEvaluator, Config)):
        return True
    if isinstance(value, Mapping):
        return any(is_delayed(k) or is_delayed(v) for k, v in value.items())
    if isinstance(value, (list, tuple, set)):
        return any(is_delayed(v) for v in value)
    return False


def resolve_delayed(value: Any) -> Any:
    """`value` with every config expression in it evaluated (dicts, lists and tuples walked);
    `**config.x` placeholders expanded into the mapping that holds them."""
    if isinstance(value, Config):
        value = DelayEvaluator(value.name)
    if isinstance(value, DelayEvaluator):
        evaluated = value()
        return _unwrap(evaluated) if isinstance(evaluated, ConfigValue) else evaluated
    if isinstance(value, Mapping):
        out: dict[Any, Any] = {}
        for k, v in value.items():
            if isinstance(k, str) and k.startswith(UNPACK_KEY):
                expanded = resolve_delayed(v)
                if not isinstance(expanded, Mapping):
                    raise AflowException(f"**{v!r} is not a mapping: it is {expanded!r:.60}")
                out.update(expanded)
            else:
                out[resolve_delayed(k)] = resolve_delayed(v)
        return out
    if isinstance(value, (list, tuple)):
        return type(value)(resolve_delayed(v) for v in value)
    return value


class Config(Parameter, collections.abc.Mapping[str, Any]):
    """`config = Config("config", default="config.json")`: the flow's configuration.

    `default=` is a file to read (or a function of the parameter context giving one), used when
    present; `default_value=` a value (a string to parse, a dict, or a function giving either).
    `parser=` turns the text into a mapping (a function, or its dotted import path); JSON by default.
    `plain=True` keeps the parsed value as it is instead of a read-only ConfigValue."""

    def __init__(
        self,
        name: str,
        default: str | Callable[..., str] | None = None,
        default_value: Any = None,
        help: str | None = None,
        required: bool | None = None,
        parser: str | Callable[[str], Any] | None = None,
        plain: bool = False,
        show_default: bool = True,
    ) -> None:
        if default is not None and default_value is not None:
            raise AflowException(f"Config '{name}': give default= (a file) or default_value=, not both")
        super().__init__(name, help=help, required=bool(required), show_default=show_default)
        self.default_file = default
        self.default_value = default_value
        self.default = default if default is not None else default_value
        self.parser = parser
        self.plain = plain

    # Mapping, so `**config` unpacks into a decorator's options.
    def __iter__(self) -> Iterator[str]:
        return iter(DelayEvaluator(self.name))

    def __len__(self) -> int:
        return 1

    def __getitem__(self, key: Any) -> Any:
        return DelayEvaluator(self.name)[key]

    def __getattr__(self, key: str) -> Any:
        if key.startswith("_"):
            raise AttributeError(key)
        return getattr(DelayEvaluator(self.name), key)

    def __hash__(self) -> int:
        return id(self)

    def __eq__(self, other: object) -> bool:
        return self is other

    @property
    def type_name(self) -> str:
        return "config"

    def convert(self, raw: Any) -> Any:
        return raw

    def resolve(self, given: dict[str, Any], ctx: ParameterContext | None = None) -> Any:
        # The value was read when the run started (read_configs): here it only passes through.
        for key in (self.name, self.attr_name):
            if key in given:
                return given[key]
        return active_configs().get(self.name)

    def parse(self, text: str | bytes, where: str) -> Any:
        if isinstance(text, bytes):  # the parser takes text, as a file's content is read
            try:
                text = text.decode("utf-8")
            except UnicodeDecodeError as e:
                raise ParameterError(f"config '{self.name}': {where} is not UTF-8 text: {e}") from None
        parser = self.parser
        if isinstance(parser, str):
            module, _, func = parser.rpartition(".")
            try:
                parser = getattr(importlib.import_module(module), func)
            except (ImportError, AttributeError, ValueError) as e:
                raise ParameterError(
                    f"config '{self.name}': parser {self.parser!r} not found ({e})"
                ) from None
        try:
            value = parser(text) if parser is not None else json.loads(text)
        except Exception as e:
            raise ParameterError(
                f"config '{self.name}': cannot parse {where}: {type(e).__name__}: {e}"
            ) from None
        return value

    def read(self, file: str | None, value: Any, ctx: ParameterContext) -> Any:
        """This config's value for a run, from what was given, else its defaults."""
        if file is not None and value is not None:
            raise ParameterError(f"config '{self.name}': give --config or --config-value, not both")
        if file is not None:
            parsed = self.parse(_read(self.name, file), file)
        elif value is not None:
            parsed = self.parse(value, "--config-value") if isinstance(value, (str, bytes)) else value
        else:
            parsed = None
            path = self.default_file
            if callable(path):
                path = path(ctx)
            if path is not None and os.path.isfile(path):
                parsed = self.parse(_read(self.name, path), path)
            elif self.default_value is not None:
                v = self.default_value
                if callable(v):
                    v = v(ctx)
                parsed = self.parse(v, "default_value") if isinstance(v, (str, bytes)) else v
        if parsed is None:
            if self.required:
                raise ParameterError(
                    f"config '{self.name}' is required: pass --config {self.name} FILE "
                    f"or --config-value {self.name} JSON"
                )
            return None
        return parsed if self.plain or not isinstance(parsed, Mapping) else ConfigValue(parsed)


def _read(name: str, path: str) -> str:
    try:
        with open(path, encoding="utf-8") as f:
            return f.read()
    except OSError as e:
        raise ParameterError(f"config '{name}': cannot read {path}: {e.strerror}") from None


def flow_configs(flow_cls: type) -> dict[str, Config]:
    return {a: p for a, p in flow_parameters(flow_cls).items() if isinstance(p, Config)}


def read_configs(
    flow_cls: type,
    files: Mapping[str, str] | None = None,
    values: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """Every config's value for a run, by config name, and make them the active ones (what
    config expressions in decorators and parameter defaults evaluate against)."""
    files, values = dict(files or {}), dict(values or {})
    configs = {c.name: c for c in flow_configs(flow_cls).values()}
    unknown = sorted((set(files) | set(values)) - set(configs))
    if unknown:
        have = ", ".join(sorted(configs)) or "none"
        raise ParameterError(
            f"{flow_cls.__name__} has no config {', '.join(map(repr, unknown))} (its configs: {have})"
        )
    ctx = ParameterContext(flow_name=flow_cls.__name__)
    read = {name: c.read(files.get(name), values.get(name), ctx) for name, c in configs.items()}
    activate(read)
    return read
