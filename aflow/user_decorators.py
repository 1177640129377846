"""Custom step decorators, as in Metaflow 2.16+: `@user_step_decorator` (a generator around the
step) and `UserStepDecorator` (a class with `pre_step` / `post_step`).

```python
@user_step_decorator
def timing(step_name, flow, inputs, attributes):
    t = time.time()
    yield                     # the step runs here; `yield {}` skips it (self.next as written)
    flow.seconds = time.time() - t
```

Applying one to a step records a `UserDecoratorRef` on the step function (importable by module and
qualified name, with its arguments); the runner sends the step's refs to the task in its spec, and
the task runtime (`run_wrapped`) rebuilds them there and runs the step through them, outermost
first. Mutators (see mutators.py) add refs the same way.
"""

from __future__ import annotations

import importlib
import inspect
import pickle
import sys
import types
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from aflow.exception import AflowException
from aflow.steps import is_step

USER_SKIP_STEP: dict[str, Any] = {}
SPEC_KEY = "user"  # where a step's user decorators travel in its spec's decorators


@dataclass
class UserDecoratorRef:
    """One user decorator on one step: what it is (by import path) and its arguments."""

    target: Any  # the generator function or the UserStepDecorator subclass
    args: tuple[Any, ...] = ()
    kwargs: dict[str, Any] = field(default_factory=dict)

    @property
    def name(self) -> str:
        return f"{self.target.__module__}.{self.target.__qualname__}"

    def to_spec(self) -> list[Any]:
        return [self.target.__module__, self.target.__qualname__, pickle.dumps((self.args, self.kwargs))]


def attach(step_func: Any, ref: UserDecoratorRef) -> Any:
    if not is_step(step_func):
        raise AflowException(
            f"@{ref.target.__name__} goes above @step (on '{getattr(step_func, '__name__', step_func)}')"
        )
    step_func.__dict__.setdefault("user_decorators", []).append(ref)
    return step_func


def user_decorator_refs(step_func: Any) -> list[UserDecoratorRef]:
    """The step's user decorators, outermost (written highest) first."""
    return list(reversed(getattr(step_func, "user_decorators", [])))


class _GeneratorDecorator:
    """What `@user_step_decorator` turns a generator function into."""

    def __init__(self, gen: Callable[..., Any], kwargs: dict[str, Any] | None = None) -> None:
        self._gen = gen
        self._kwargs = kwargs or {}
        self.__name__ = gen.__name__
        self.__doc__ = gen.__doc__

    def __call__(self, step_func: Any = None, **kwargs: Any) -> Any:
        if step_func is None or not callable(step_func):
            if len(inspect.signature(self._gen).parameters) != 4:
                raise AflowException(
                    f"@{self.__name__}(...) takes options only if its generator has 4 arguments "
                    "(step_name, flow, inputs, attributes)"
                )
            return _GeneratorDecorator(self._gen, kwargs)
        return attach(step_func, UserDecoratorRef(self._gen, (), dict(self._kwargs)))


def user_step_decorator(gen: Callable[..., Any] | None = None, **kwargs: Any) -> Any:
    """Make a generator function `(step_name, flow, inputs[, attributes])` a step decorator."""
    if gen is None:
        return lambda g: user_step_decorator(g, **kwargs)
    if not isinstance(gen, types.FunctionType) or not inspect.isgeneratorfunction(gen):
        raise AflowException("@user_step_decorator decorates generator functions (with a yield)")
    if len(inspect.signature(gen).parameters) not in (3, 4):
        raise AflowException(
            f"@user_step_decorator: {gen.__name__} must take (step_name, flow, inputs) or "
            "(step_name, flow, inputs, attributes)"
        )
    return _GeneratorDecorator(gen, kwargs)


class UserStepDecorator:
    """Subclass and implement `init`, `pre_step` and/or `post_step`; use as `@MyDecorator` or
    `@MyDecorator(option=...)` above `@step`."""

    _ref: UserDecoratorRef  # how this instance was written (class and options), set by __new__

    def __new__(cls, *args: Any, **kwargs: Any) -> Any:
        if args and is_step(args[0]):  # used bare: @MyDecorator
            return attach(args[0], UserDecoratorRef(cls, args[1:], kwargs))
        self = super().__new__(cls)
        self._ref = UserDecoratorRef(cls, args, kwargs)
        return self

    def __call__(self, step_func: Any) -> Any:
        return attach(step_func, self._ref)

    # -- what a subclass implements ----------------------------------------------------------

    def init(self, *args: Any, **kwargs: Any) -> None:
        if args or kwargs:
            raise AflowException(f"{type(self).__name__} takes no arguments (implement init())")

    def pre_step(self, step_name: str, flow: Any, inputs: Any = None) -> Callable[..., Any] | None:
        return None

    def post_step(self, step_name: str, flow: Any, exception: BaseException | None = None) -> Any:
        return exception, None

    @property
    def skip_step(self) -> bool | dict[str, Any]:
        return getattr(self, "_skip_step", False)

    @skip_step.setter
    def skip_step(self, value: bool | dict[str, Any]) -> None:
        self._skip_step = value


class _RunningGenerator(UserStepDecorator):
    """A generator decorator while one task runs: the generator is advanced around the step."""

    def __new__(cls, *args: Any, **kwargs: Any) -> Any:
        return object.__new__(cls)

    def __init__(self, gen: Callable[..., Any], kwargs: dict[str, Any]) -> None:
        self._gen_func = gen
        self._kwargs = kwargs
        self._gen: Any = None

    def pre_step(self, step_name: str, flow: Any, inputs: Any = None) -> Any:
        takes = len(inspect.signature(self._gen_func).parameters)
        extra = (self._kwargs,) if takes == 4 else ()
        self._gen = self._gen_func(step_name, flow, inputs, *extra)
        try:
            got = self._gen.send(None)
        except StopIteration:  # returned without yielding: the step does not run
            self.skip_step = True
            self._gen = None
            return None
        if isinstance(got, dict):
            self.skip_step = got or True
            return None
        return got

    def post_step(self, step_name: str, flow: Any, exception: BaseException | None = None) -> Any:
        if self._gen is None:
            return exception, None
        try:
            if exception is not None:
                self._gen.throw(exception)
            else:
                self._gen.send(None)
        except StopIteration:
            return None, None  # finished; an exception thrown in and not re-raised is handled
        except BaseException as e:
            return e, None
        return AflowException(f"the step decorator {self._gen_func.__name__} yielded twice"), None


def _resolve(module: str, qualname: str) -> Any:
    mod = sys.modules.get(module) or importlib.import_module(module)
    value: Any = mod
    for part in qualname.split("."):
        value = getattr(value, part)
    return value


def _instantiate(entry: list[Any]) -> UserStepDecorator:
    module, qualname, packed = entry
    target = _resolve(module, qualname)
    args, kwargs = pickle.loads(packed)
    if isinstance(target, _GeneratorDecorator):
        target = target._gen
    if isinstance(target, types.FunctionType):
        return _RunningGenerator(target, kwargs)
    if not (isinstance(target, type) and issubclass(target, UserStepDecorator)):
        raise AflowException(
            f"{module}.{qualname} is no longer a step decorator (a UserStepDecorator subclass or "
            "@user_step_decorator generator): was the flow's code changed while it ran?"
        )
    deco = object.__new__(target)
    deco.init(*args, **kwargs)
    return deco


def run_wrapped(
    entries: list[list[Any]],
    step_name: str,
    flow: Any,
    inputs: Any,
    call_step: Callable[[], Any],
    default_next: Callable[[], None],
) -> None:
    """Run the step through its user decorators (outermost first), as Metaflow does: a decorator
    may skip the step, replace it, or handle (or raise) its exception after it."""
    decorators = [_instantiate(e) for e in entries]

    def around(i: int) -> None:
        if i == len(decorators):
            call_step()
            return
        deco = decorators[i]
        replacement = deco.pre_step(step_name, flow, inputs)
        error: BaseException | None = None
        try:
            if deco.skip_step:
                default_next()  # skipped: the flow goes on as the step's self.next says
            elif replacement is not None:
                result = replacement(flow, inputs) if inputs is not None else replacement(flow)
                if result is True or isinstance(result, dict):
                    default_next()
            else:
                around(i + 1)
        except Exception as e:
            error = e
        outcome = deco.post_step(step_name, flow, error)
        raised = outcome[0] if isinstance(outcome, tuple) else outcome
        if isinstance(outcome, tuple) and len(outcome) > 2 and outcome[2] is not None:
            raised = outcome[2]
        if isinstance(outcome, tuple) and len(outcome) > 1 and isinstance(outcome[1], dict):
            default_next()
        if raised is not None:
            if raised is error:
                raise error
            raise raised
        if error is not None:
            default_next()  # the decorator handled the step's failure: the flow goes on

    around(0)
