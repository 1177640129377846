"""Step decorators: `@retry`, `@catch`, `@timeout`, `@environment`, the compute decorators `@batch`,
`@kubernetes` and `@resources`, and `--with` on the command line.

A decorator here only records its settings on the step function; the scheduler and the task runtime
read them (as plain dicts, see `step_decorators`) and act. `--with name:key=value,...` attaches a
decorator to every step that does not already have one of that name, as in Metaflow.
"""

from __future__ import annotations

import ast
from collections.abc import Callable, Iterable, Mapping
from typing import Any

from aflow.exception import AflowException

F = Callable[..., Any]


class StepDecorator:
    """The settings of one decorator on one step."""

    name = ""
    defaults: dict[str, Any] = {}

    def __init__(self, **attributes: Any) -> None:
        from aflow.config import UNPACK_KEY, is_delayed

        unknown = sorted(set(attributes) - set(self.defaults))
        unknown = [u for u in unknown if not u.startswith(UNPACK_KEY)]  # `**config.x`
        if unknown:
            known = ", ".join(self.defaults) or "none"
            raise AflowException(
                f"@{self.name} has no option {', '.join(unknown)} (its options: {known})"
            )
        self.attributes = {**self.defaults, **attributes}
        # Options that use a Config are checked once the run's configs are read (resolved()).
        self.delayed = is_delayed(attributes)
        if not self.delayed:
            self.validate()

    def resolved(self) -> dict[str, Any]:
        """The options, with any config expression in them evaluated (and then checked)."""
        if not self.delayed:
            return dict(self.attributes)
        from aflow.config import resolve_delayed

        return dict(type(self)(**resolve_delayed(self.attributes)).attributes)

    def validate(self) -> None:
        pass

    def number(self, option: str) -> float:
        """An option that must be a number >= 0, or an error naming the decorator and option."""
        value = self.attributes[option]
        try:
            if isinstance(value, bool):
                raise ValueError
            number = float(value)
        except (TypeError, ValueError):
            raise AflowException(
                f"@{self.name}({option}={value!r}): {option} must be a number"
            ) from None
        if number < 0:
            raise AflowException(f"@{self.name}({option}={value!r}): {option} must be >= 0")
        return number

    def __call__(self, f: F) -> F:
        decorators = f.__dict__.setdefault("decorators", [])
        if any(d.name == self.name for d in decorators):
            raise AflowException(f"step '{f.__name__}' has @{self.name} twice")
        decorators.append(self)
        return f

    def __repr__(self) -> str:
        return f"@{self.name}({', '.join(f'{k}={v!r}' for k, v in self.attributes.items())})"


class RetryDecorator(StepDecorator):
    name = "retry"
    # only_platform_errors: retry a task that was killed or lost (no record of a user exception),
    # not one whose own code raised.
    defaults = {"times": 3, "minutes_between_retries": 2, "only_platform_errors": False}

    def validate(self) -> None:
        times = self.attributes["times"]
        if isinstance(times, bool) or not isinstance(times, int) or times < 0:
            raise AflowException(f"@retry(times={times!r}): times must be a whole number >= 0")
        self.number("minutes_between_retries")


class CatchDecorator(StepDecorator):
    name = "catch"
    defaults = {"var": None, "print_exception": True}


class TimeoutDecorator(StepDecorator):
    name = "timeout"
    defaults = {"seconds": 0, "minutes": 0, "hours": 0}

    def validate(self) -> None:
        if self.seconds_total() <= 0:
            raise AflowException("@timeout needs seconds=, minutes= or hours= greater than zero")

    def seconds_total(self) -> float:
        return self.number("seconds") + 60 * self.number("minutes") + 3600 * self.number("hours")


class EnvironmentDecorator(StepDecorator):
    name = "environment"
    defaults = {"vars": {}}


class SecretsDecorator(StepDecorator):
    """Secrets as environment variables of the task (see aflow/secret_providers.py)."""

    name = "secrets"
    defaults = {"sources": [], "role": None, "allow_override": False}

    def validate(self) -> None:
        from aflow.secret_providers import parse_source

        for source in self.attributes["sources"] or []:
            parse_source(source, None)  # a malformed source is refused before the run


class ResourcesDecorator(StepDecorator):
    """What a step needs (cpu, memory in MiB, gpu, disk in MiB), honoured by whichever compute
    decorator runs it; locally it is only recorded, as in Metaflow."""

    name = "resources"
    defaults = {"cpu": 1, "memory": 4096, "gpu": None, "disk": None}

    def validate(self) -> None:
        for option in self.defaults:
            if self.attributes[option] is not None:
                self.number(option)


class BatchDecorator(StepDecorator):
    name = "batch"
    defaults = {
        "cpu": 1, "gpu": 0, "memory": 4096, "image": None, "queue": None, "iam_role": None,
        "shared_memory": None, "execution_role": None,
    }  # fmt: skip

    def validate(self) -> None:
        for option in ("cpu", "gpu", "memory", "shared_memory"):
            if self.attributes[option] is not None:
                self.number(option)


class KubernetesDecorator(StepDecorator):
    name = "kubernetes"
    defaults = {
        "cpu": 1, "memory": 4096, "disk": None, "gpu": None, "image": None, "namespace": None,
        "service_account": None, "node_selector": None, "tolerations": None, "labels": None,
    }  # fmt: skip

    def validate(self) -> None:
        for option in ("cpu", "memory", "disk", "gpu"):
            if self.attributes[option] is not None:
                self.number(option)
        selector = self.attributes["node_selector"]
        if isinstance(selector, str):  # "a=b,c=d", as on the command line
            pairs = (p.partition("=") for p in selector.split(",") if p.strip())
            self.attributes["node_selector"] = {k.strip(): v.strip() for k, _, v in pairs}


class PypiDecorator(StepDecorator):
    """Packages from PyPI for this step, in an environment of their own (see engine/environments)."""

    name = "pypi"
    defaults = {"packages": {}, "python": None}

    def validate(self) -> None:
        _check_packages(self.name, self.attributes["packages"])


class CondaDecorator(StepDecorator):
    name = "conda"
    defaults = {"libraries": {}, "packages": {}, "python": None, "disabled": False}

    def validate(self) -> None:
        for option in ("libraries", "packages"):
            _check_packages(self.name, self.attributes[option])


class CardDecorator(StepDecorator):
    """A report saved with each task of the step (see aflow/cards); a step may have several."""

    name = "card"
    defaults = {
        "type": "default", "id": None, "options": {}, "timeout": 45, "refresh_interval": 5,
        "save_errors": True, "customize": False, "scope": "task", "rank": None,
    }  # fmt: skip

    def validate(self) -> None:
        from aflow.cards.storage import check_card_name

        check_card_name("type", self.attributes["type"])
        if self.attributes["id"] is not None:
            check_card_name("id", self.attributes["id"])
        self.number("timeout")
        self.number("refresh_interval")

    def __call__(self, f: F) -> F:
        f.__dict__.setdefault("decorators", []).append(self)
        return f


def _check_packages(decorator: str, packages: Any) -> None:
    if not isinstance(packages, dict) or not all(isinstance(k, str) for k in packages):
        raise AflowException(
            f"@{decorator}(packages={packages!r}): give a dict of name to version, "
            'e.g. {"six": "1.16.0"}'
        )


ENVIRONMENTS = ("pypi", "conda")


def _flow_decorator(cls: type[StepDecorator]) -> Callable[..., Any]:
    """`@pypi_base(...)` / `@conda_base(...)` on the flow class: every step's default."""

    def decorator(flow_cls: type | None = None, **attributes: Any) -> Any:
        def apply(target: type) -> type:
            setattr(target, f"_aflow_{cls.name}_base", cls(**attributes))
            return target

        return apply(flow_cls) if isinstance(flow_cls, type) else apply

    decorator.__name__ = f"{cls.name}_base"
    decorator.__doc__ = f"The flow-level @{cls.name}_base decorator: @{cls.name} for every step."
    return decorator


COMPUTE = ("batch", "kubernetes")

DECORATORS: dict[str, type[StepDecorator]] = {
    d.name: d
    for d in (
        RetryDecorator, CatchDecorator, TimeoutDecorator, EnvironmentDecorator, SecretsDecorator,
        ResourcesDecorator,
        BatchDecorator, KubernetesDecorator, PypiDecorator, CondaDecorator, CardDecorator,
    )
}  # fmt: skip


def compute_of(step: str, decorators: Mapping[str, Mapping[str, Any]]) -> str | None:
    """Where a step runs: "batch", "kubernetes", or None for local."""
    chosen = [name for name in COMPUTE if name in decorators]
    if len(chosen) > 1:
        raise AflowException(f"step '{step}' has both @batch and @kubernetes: keep one")
    return chosen[0] if chosen else None


def resources_for(decorators: dict[str, dict[str, Any]], compute: str) -> dict[str, float | None]:
    """cpu, memory, gpu, disk for a remote step: the larger of the compute decorator's value and
    @resources' (as in Metaflow), None where neither asks."""
    own = decorators.get(compute, {})
    asked = decorators.get("resources", {})
    out: dict[str, float | None] = {}
    for option in ("cpu", "memory", "gpu", "disk"):
        values = [float(v) for v in (own.get(option), asked.get(option)) if v is not None]
        out[option] = max(values) if values else None
    return out


def _factory(cls: type[StepDecorator]) -> Callable[..., Any]:
    def decorator(f: F | None = None, **attributes: Any) -> Any:
        if f is not None and callable(f) and not attributes:
            return cls()(f)  # used bare: @retry
        return cls(**attributes)  # used with options: @retry(times=2)

    decorator.__name__ = cls.name
    decorator.__doc__ = f"The @{cls.name} step decorator (options: {', '.join(cls.defaults)})."
    return decorator


retry = _factory(RetryDecorator)
catch = _factory(CatchDecorator)
timeout = _factory(TimeoutDecorator)
environment = _factory(EnvironmentDecorator)
secrets = _factory(SecretsDecorator)
resources = _factory(ResourcesDecorator)
batch = _factory(BatchDecorator)
kubernetes = _factory(KubernetesDecorator)
pypi = _factory(PypiDecorator)
conda = _factory(CondaDecorator)
card = _factory(CardDecorator)
pypi_base = _flow_decorator(PypiDecorator)
conda_base = _flow_decorator(CondaDecorator)


def parse_with(spec: str) -> StepDecorator:
    """`retry`, `catch:var=x`, `timeout:minutes=5`, `retry:times=2,minutes_between_retries=0`."""
    name, _, rest = spec.partition(":")
    cls = DECORATORS.get(name.strip())
    if cls is None:
        raise AflowException(
            f"--with {spec}: no decorator named '{name}' (known: {', '.join(DECORATORS)})"
        )
    attributes: dict[str, Any] = {}
    for item in filter(None, (p.strip() for p in _split_options(rest))):
        key, eq, value = item.partition("=")
        if not eq:
            raise AflowException(f"--with {spec}: write options as key=value, not '{item}'")
        try:
            attributes[key.strip()] = ast.literal_eval(value.strip())
        except (ValueError, SyntaxError):
            attributes[key.strip()] = value.strip()
    return cls(**attributes)


def _split_options(text: str) -> list[str]:
    """Split on commas outside brackets, so vars={'A': '1', 'B': '2'} stays whole."""
    parts, depth, current = [], 0, ""
    for ch in text:
        if ch in "{[(":
            depth += 1
        elif ch in "}])":
            depth -= 1
        if ch == "," and depth == 0:
            parts.append(current)
            current = ""
        else:
            current += ch
    parts.append(current)
    return parts


def _with_flow_environment(flow_cls: type, own: dict[str, dict[str, Any]]) -> None:
    """A step's @pypi/@conda over the flow's @pypi_base/@conda_base: its packages added to (and
    overriding) the base's, its python if it sets one. `@conda(disabled=True)` opts out."""
    for kind in ENVIRONMENTS:
        base_decorator = getattr(flow_cls, f"_aflow_{kind}_base", None)
        base = base_decorator.resolved() if base_decorator is not None else None
        if not base or any(k in own for k in ENVIRONMENTS if k != kind):
            continue
        mine = own.get(kind)
        if mine is None:
            own[kind] = {k: (dict(v) if isinstance(v, dict) else v) for k, v in base.items()}
            continue
        for option in ("packages", "libraries"):
            if option in base:
                mine[option] = {**(base.get(option) or {}), **(mine.get(option) or {})}
        mine["python"] = mine.get("python") or base.get("python")
    if own.get("conda", {}).get("disabled"):
        del own["conda"]


def step_decorators(
    flow_cls: type, steps: Iterable[str], with_specs: Iterable[str] = ()
) -> dict[str, dict[str, dict[str, Any]]]:
    """Each step's decorators as {name: attributes}; `--with` ones fill in where a step has none."""
    extra = [parse_with(s) for s in with_specs]
    out: dict[str, dict[str, dict[str, Any]]] = {}
    for step in steps:
        func = getattr(flow_cls, step)
        own = {
            d.name: d.resolved()
            for d in getattr(func, "decorators", [])
            if isinstance(d, StepDecorator) and not isinstance(d, CardDecorator)
        }
        # Decorators apply bottom-up: reversed, the cards are in the order the source lists them.
        cards = [d for d in reversed(getattr(func, "decorators", [])) if isinstance(d, CardDecorator)]
        cards += [d for d in extra if isinstance(d, CardDecorator)] if not cards else []
        if cards:  # several per step: {"card": {"cards": [attributes, ...]}}
            own["card"] = {"cards": [dict(d.attributes) for d in cards]}
        for d in extra:
            if d.name in COMPUTE and any(c in own for c in COMPUTE):
                continue  # a step's own @batch/@kubernetes wins over --with's
            own.setdefault(d.name, dict(d.attributes))
        _with_flow_environment(flow_cls, own)
        compute_of(step, own)
        from aflow.user_decorators import SPEC_KEY, user_decorator_refs

        user = user_decorator_refs(func)
        if user:  # sent to the task, which runs the step through them
            own[SPEC_KEY] = {"wrappers": [ref.to_spec() for ref in user]}
        out[step] = own
    return out
