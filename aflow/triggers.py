"""`@schedule`, `@trigger` and `@trigger_on_finish`: accepted and recorded, as a local Metaflow run
does (they take effect only when a flow is deployed to a production scheduler, which aflow does not
have). Each run's record keeps them (`triggers`), and the commands that would deploy a flow
(`step-functions`, `argo-workflows`, `airflow`) say so instead of failing obscurely.
"""

from __future__ import annotations

from typing import Any

from aflow.exception import AflowException

SCHEDULERS = ("step-functions", "argo-workflows", "airflow")


class FlowTrigger:
    """One of these decorators' settings on a flow class."""

    name = ""
    defaults: dict[str, Any] = {}

    def __init__(self, **attributes: Any) -> None:
        unknown = sorted(set(attributes) - set(self.defaults))
        if unknown:
            raise AflowException(
                f"@{self.name} has no option {', '.join(unknown)} "
                f"(its options: {', '.join(self.defaults)})"
            )
        self.attributes = {**self.defaults, **attributes}

    def __call__(self, flow_cls: type) -> type:
        found = dict(getattr(flow_cls, "_aflow_triggers", {}))
        if self.name in found:
            raise AflowException(f"{flow_cls.__name__} has @{self.name} twice")
        found[self.name] = self
        flow_cls._aflow_triggers = found  # type: ignore[attr-defined]
        return flow_cls

    def describe(self) -> dict[str, Any]:
        from aflow.config import resolve_delayed

        return {k: v for k, v in resolve_delayed(self.attributes).items() if v not in (None, [], {})}


class Schedule(FlowTrigger):
    name = "schedule"
    defaults = {"cron": None, "weekly": False, "daily": True, "hourly": False, "timezone": None}

    def describe(self) -> dict[str, Any]:
        a = super().describe()
        # The cron expression a scheduler would get (Metaflow's choice: cron, weekly, hourly, daily).
        if a.get("cron"):
            cron = a["cron"]
        elif a.get("weekly"):
            cron = "0 0 ? * SUN *"
        elif a.get("hourly"):
            cron = "0 * * * ? *"
        elif a.get("daily"):
            cron = "0 0 * * ? *"
        else:
            cron = None
        return {"cron": cron, **({"timezone": a["timezone"]} if a.get("timezone") else {})}


class Trigger(FlowTrigger):
    name = "trigger"
    defaults = {"event": None, "events": [], "options": {}}


class TriggerOnFinish(FlowTrigger):
    name = "trigger_on_finish"
    defaults = {"flow": None, "flows": [], "options": {}}


def _flow_decorator(cls: type[FlowTrigger]) -> Any:
    def decorator(flow_cls: type | None = None, **attributes: Any) -> Any:
        if isinstance(flow_cls, type):
            return cls()(flow_cls)  # used bare: @schedule
        return cls(**attributes)

    decorator.__name__ = cls.name
    decorator.__doc__ = (
        f"@{cls.name}({', '.join(cls.defaults)}): recorded with each run; it takes effect only "
        "on a production scheduler, which aflow does not have (a local run ignores it, as "
        "Metaflow's does)."
    )
    return decorator


schedule = _flow_decorator(Schedule)
trigger = _flow_decorator(Trigger)
trigger_on_finish = _flow_decorator(TriggerOnFinish)


def recorded_triggers(flow_cls: type) -> dict[str, Any]:
    """What the run record keeps: each decorator's settings, by name."""
    return {name: t.describe() for name, t in getattr(flow_cls, "_aflow_triggers", {}).items()}
