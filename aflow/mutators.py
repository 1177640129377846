"""`StepMutator` and `FlowMutator` (Metaflow 2.16+): code that changes a flow's steps, decorators and
parameters once its configs are known.

```python
class Retried(FlowMutator):
    def mutate(self, mutable_flow):
        for name, s in mutable_flow.steps:
            s.add_decorator(retry, deco_kwargs={"times": mutable_flow.config.retries})
```

`apply_mutators` runs every mutator when a run starts, after its configs are read: `pre_mutate`
of flow mutators, then of step mutators, then `mutate` likewise. What they change is the flow
class itself (decorators on its step functions, Parameters on the class), restored to what the
source says before each run, so two runs in one process do not stack their changes.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from aflow.decorators import DECORATORS, StepDecorator, parse_with
from aflow.exception import AflowException
from aflow.parameters import Parameter, flow_parameters
from aflow.steps import is_step
from aflow.user_decorators import UserDecoratorRef, _GeneratorDecorator, attach

IGNORE, ERROR, OVERRIDE = 1, 2, 3


class StepMutator:
    """Subclass and implement `init`, `pre_mutate(mutable_step)` and/or `mutate(mutable_step)`;
    use as `@MyMutator` or `@MyMutator(args)` above `@step`."""

    def __new__(cls, *args: Any, **kwargs: Any) -> Any:
        if args and is_step(args[0]) and not kwargs and len(args) == 1:
            mutator = super().__new__(cls)
            mutator.init()
            args[0].__dict__.setdefault("step_mutators", []).append(mutator)
            return args[0]
        return super().__new__(cls)

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        self.init(*args, **kwargs)

    def __call__(self, step_func: Any) -> Any:
        if not is_step(step_func):
            raise AflowException(f"@{type(self).__name__} goes above @step")
        step_func.__dict__.setdefault("step_mutators", []).append(self)
        return step_func

    def init(self, *args: Any, **kwargs: Any) -> None:
        if args or kwargs:
            raise AflowException(f"{type(self).__name__} takes no arguments (implement init())")

    def pre_mutate(self, mutable_step: MutableStep) -> None:
        return None

    def mutate(self, mutable_step: MutableStep) -> None:
        return None


class FlowMutator:
    """Subclass and implement `init`, `pre_mutate(mutable_flow)` and/or `mutate(mutable_flow)`;
    use as `@MyMutator` or `@MyMutator(args)` on the flow class."""

    def __new__(cls, *args: Any, **kwargs: Any) -> Any:
        if args and isinstance(args[0], type) and len(args) == 1 and not kwargs:
            mutator = super().__new__(cls)
            mutator.init()
            return mutator._attach(args[0])
        return super().__new__(cls)

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        self.init(*args, **kwargs)

    def __call__(self, flow_cls: type) -> type:
        return self._attach(flow_cls)

    def _attach(self, flow_cls: type) -> type:
        flow_cls._aflow_flow_mutators = [  # type: ignore[attr-defined]
            *flow_cls.__dict__.get("_aflow_flow_mutators", []),
            self,
        ]
        return flow_cls

    def init(self, *args: Any, **kwargs: Any) -> None:
        if args or kwargs:
            raise AflowException(f"{type(self).__name__} takes no arguments (implement init())")

    def pre_mutate(self, mutable_flow: MutableFlow) -> None:
        return None

    def mutate(self, mutable_flow: MutableFlow) -> None:
        return None


class MutableStep:
    """One step as a mutator sees it: its decorators, to read, add and remove."""

    IGNORE, ERROR, OVERRIDE = IGNORE, ERROR, OVERRIDE

    def __init__(self, flow: MutableFlow, name: str, pre_mutate: bool) -> None:
        self._flow = flow
        self.name = name
        self._func = getattr(flow._flow_cls, name)
        self._pre_mutate = pre_mutate

    @property
    def flow(self) -> MutableFlow:
        return self._flow

    def _all(self) -> list[Any]:
        return [
            *self._func.__dict__.get("decorators", []),
            *self._func.__dict__.get("user_decorators", []),
        ]

    @property
    def decorator_specs(self) -> Iterator[tuple[str, str, list[Any], dict[str, Any]]]:
        """(name, full name, args, kwargs) of each decorator on the step."""
        for d in self._all():
            if isinstance(d, StepDecorator):
                yield d.name, d.name, [], dict(d.attributes)
            else:
                yield d.target.__name__, d.name, list(d.args), dict(d.kwargs)

    def _matches(self, d: Any, query: str) -> bool:
        if isinstance(d, StepDecorator):
            return d.name == query
        return query in (d.target.__name__, d.name) or d.name.endswith("." + query)

    def has_decorator(self, name: str) -> bool:
        return any(self._matches(d, name) for d in self._all())

    def add_decorator(
        self,
        deco_type: Any,
        deco_args: list[Any] | None = None,
        deco_kwargs: dict[str, Any] | None = None,
        duplicates: int = IGNORE,
    ) -> Any:
        """Add a decorator (aflow's, `@user_step_decorator`'s, a UserStepDecorator class, or a
        spec string like "retry:times=2"). `duplicates` says what to do when the step has it."""
        deco_kwargs = dict(deco_kwargs or {})
        if isinstance(deco_type, str):
            name = deco_type.partition(":")[0]
            if name in DECORATORS:
                built = parse_with(deco_type)
                built.attributes.update(deco_kwargs)
                return self._add_builtin(DECORATORS[name](**built.attributes), duplicates)
            raise AflowException(f"add_decorator({deco_type!r}): no decorator named '{name}'")
        name = getattr(deco_type, "__name__", "")
        if name in DECORATORS and getattr(deco_type, "__module__", "") == "aflow.decorators":
            return self._add_builtin(DECORATORS[name](**deco_kwargs), duplicates)
        if isinstance(deco_type, _GeneratorDecorator):
            ref = UserDecoratorRef(deco_type._gen, (), {**deco_type._kwargs, **deco_kwargs})
        elif isinstance(deco_type, type):
            ref = UserDecoratorRef(deco_type, tuple(deco_args or ()), deco_kwargs)
        else:
            raise AflowException(f"add_decorator: {deco_type!r} is not a step decorator")
        if self.has_decorator(ref.name):
            if duplicates == IGNORE:
                return None
            if duplicates == ERROR:
                raise AflowException(f"step '{self.name}' already has {ref.name}")
            self.remove_decorator(ref.name)
        attach(self._func, ref)
        return ref

    def _add_builtin(self, deco: StepDecorator, duplicates: int) -> Any:
        existing = self._func.__dict__.setdefault("decorators", [])
        if any(d.name == deco.name for d in existing):
            if duplicates == IGNORE:
                return None
            if duplicates == ERROR:
                raise AflowException(f"step '{self.name}' already has @{deco.name}")
            existing[:] = [d for d in existing if d.name != deco.name]
        existing.append(deco)
        return deco

    def remove_decorator(
        self,
        deco_name: str,
        deco_args: list[Any] | None = None,
        deco_kwargs: dict[str, Any] | None = None,
    ) -> bool:
        removed = False
        for attr in ("decorators", "user_decorators"):
            found = self._func.__dict__.get(attr, [])
            keep = [d for d in found if not self._matches(d, deco_name)]
            removed = removed or len(keep) != len(found)
            found[:] = keep
        return removed


class MutableFlow:
    """The flow as a mutator sees it: its configs, parameters and steps."""

    def __init__(self, flow_cls: type, pre_mutate: bool) -> None:
        self._flow_cls = flow_cls
        self._pre_mutate = pre_mutate

    @property
    def configs(self) -> Iterator[tuple[str, Any]]:
        from aflow.config import _wrap
        from aflow.run_configs import active_configs

        yield from ((name, _wrap(value)) for name, value in active_configs().items())

    @property
    def parameters(self) -> Iterator[tuple[str, Parameter]]:
        for attr, p in flow_parameters(self._flow_cls).items():
            if p.type_name != "config":
                yield attr, p

    @property
    def steps(self) -> Iterator[tuple[str, MutableStep]]:
        for attr in dir(self._flow_cls):
            if is_step(getattr(self._flow_cls, attr, None)):
                yield attr, MutableStep(self, attr, self._pre_mutate)

    def add_parameter(self, name: str, value: Parameter, overwrite: bool = False) -> None:
        if not self._pre_mutate:
            raise AflowException(f"add_parameter('{name}') works in pre_mutate only, not in mutate")
        if hasattr(self._flow_cls, name) and not overwrite:
            raise AflowException(
                f"{self._flow_cls.__name__} already has '{name}': pass overwrite=True to replace it"
            )
        if not isinstance(value, Parameter) or value.type_name == "config":
            raise AflowException(f"add_parameter('{name}') takes a Parameter, not {value!r}")
        value.__set_name__(self._flow_cls, name)
        setattr(self._flow_cls, name, value)

    def remove_parameter(self, parameter_name: str) -> bool:
        if not self._pre_mutate:
            raise AflowException(f"remove_parameter('{parameter_name}') works in pre_mutate only")
        for attr, p in flow_parameters(self._flow_cls).items():
            if parameter_name in (p.name, attr) and p.type_name != "config":
                for klass in self._flow_cls.__mro__:
                    if attr in vars(klass):
                        delattr(klass, attr)
                        break
                return True
        return False

    def add_decorator(
        self,
        deco_type: Any,
        deco_args: list[Any] | None = None,
        deco_kwargs: dict[str, Any] | None = None,
        duplicates: int = IGNORE,
    ) -> Any:
        """Add a flow decorator (@project, @pypi_base, @conda_base, @schedule, @trigger,
        @trigger_on_finish, by function or name) or a FlowMutator class."""
        name = deco_type if isinstance(deco_type, str) else getattr(deco_type, "__name__", "")
        if isinstance(deco_type, type) and issubclass(deco_type, FlowMutator):
            return deco_type(*(deco_args or []), **(deco_kwargs or {}))(self._flow_cls)
        factories = _flow_decorator_factories()
        factory = factories.get(name)
        if factory is None:
            known = ", ".join(factories)
            raise AflowException(f"add_decorator({name!r}): not a flow decorator (known: {known})")
        if self.has_decorator(name):
            if duplicates == IGNORE:
                return None
            if duplicates == ERROR:
                raise AflowException(f"{self._flow_cls.__name__} already has @{name}")
            self.remove_decorator(name)
        return factory(**(deco_kwargs or {}))(self._flow_cls)

    def has_decorator(self, name: str) -> bool:
        attr = _FLOW_DECORATOR_ATTRS.get(name)
        if attr is None:
            return False
        if attr == "_aflow_triggers":
            return name in self._flow_cls.__dict__.get(attr, {})
        return attr in self._flow_cls.__dict__

    def remove_decorator(self, name: str, *_args: Any, **_kwargs: Any) -> bool:
        attr = _FLOW_DECORATOR_ATTRS.get(name)
        if attr is None or not self.has_decorator(name):
            return False
        if attr == "_aflow_triggers":
            triggers = dict(self._flow_cls.__dict__[attr])
            del triggers[name]
            setattr(self._flow_cls, attr, triggers)
        else:
            delattr(self._flow_cls, attr)
        return True

    def __getattr__(self, name: str) -> Any:
        if name.startswith("_"):
            raise AttributeError(name)
        value = getattr(self._flow_cls, name, None)
        if is_step(value):
            return MutableStep(self, name, self._pre_mutate)
        from aflow.config import Config, DelayEvaluator

        if isinstance(value, Config):
            return DelayEvaluator(value.name)()
        raise AttributeError(f"{self._flow_cls.__name__} has no step or config '{name}'")


def _flow_decorator_factories() -> dict[str, Any]:
    from aflow import decorators, projects, triggers

    return {
        "project": projects.project,
        "pypi_base": decorators.pypi_base,
        "conda_base": decorators.conda_base,
        "schedule": triggers.schedule,
        "trigger": triggers.trigger,
        "trigger_on_finish": triggers.trigger_on_finish,
    }


_FLOW_DECORATOR_ATTRS = {
    "project": "_aflow_project",
    "pypi_base": "_aflow_pypi_base",
    "conda_base": "_aflow_conda_base",
    "schedule": "_aflow_triggers",
    "trigger": "_aflow_triggers",
    "trigger_on_finish": "_aflow_triggers",
}


def _pristine(flow_cls: type) -> dict[str, Any]:
    """The class as its source made it (steps' decorator lists, class attributes), saved the
    first time mutators run, so later runs start from it again."""
    saved = flow_cls.__dict__.get("_aflow_pristine")
    if saved is None:
        steps = {
            attr: {k: list(getattr(f, k, [])) for k in ("decorators", "user_decorators")}
            for attr in dir(flow_cls)
            if is_step(f := getattr(flow_cls, attr, None))
        }
        attrs = {k: v for k, v in vars(flow_cls).items() if isinstance(v, Parameter)}
        flow_level = {
            a: vars(flow_cls)[a] for a in set(_FLOW_DECORATOR_ATTRS.values()) if a in vars(flow_cls)
        }
        saved = {"steps": steps, "params": attrs, "flow": flow_level}
        flow_cls._aflow_pristine = saved  # type: ignore[attr-defined]
    return saved


def _restore(flow_cls: type, saved: dict[str, Any]) -> None:
    for attr, lists in saved["steps"].items():
        func = getattr(flow_cls, attr)
        for k, v in lists.items():
            func.__dict__[k] = list(v)
    for attr, value in list(vars(flow_cls).items()):
        if isinstance(value, Parameter) and attr not in saved["params"]:
            delattr(flow_cls, attr)
    for attr, value in saved["params"].items():
        setattr(flow_cls, attr, value)
    for attr in set(_FLOW_DECORATOR_ATTRS.values()):
        if attr in saved["flow"]:
            setattr(flow_cls, attr, saved["flow"][attr])
        elif attr in vars(flow_cls):
            delattr(flow_cls, attr)


def has_mutators(flow_cls: type) -> bool:
    if any(getattr(k, "_aflow_flow_mutators", None) for k in flow_cls.__mro__):
        return True
    return any(
        getattr(getattr(flow_cls, a, None), "step_mutators", None)
        for a in dir(flow_cls)
        if is_step(getattr(flow_cls, a, None))
    )


def apply_mutators(flow_cls: type) -> None:
    """Run every mutator of the flow (configs already read): pre_mutate, then mutate."""
    if not has_mutators(flow_cls) and "_aflow_pristine" not in flow_cls.__dict__:
        return
    _restore(flow_cls, _pristine(flow_cls))
    flow_mutators = [
        m for k in reversed(flow_cls.__mro__) for m in k.__dict__.get("_aflow_flow_mutators", [])
    ]
    for stage in ("pre_mutate", "mutate"):
        mutable = MutableFlow(flow_cls, pre_mutate=stage == "pre_mutate")
        for fm in flow_mutators:
            getattr(fm, stage)(mutable)
        for name, mstep in list(mutable.steps):
            for sm in list(getattr(getattr(flow_cls, name), "step_mutators", [])):
                getattr(sm, stage)(mstep)
