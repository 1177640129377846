"""`current`: what a running task knows about itself (flow, run, step, task, retry).

Set by the task runtime before the user's step runs; outside a task every field reads as None.
"""

from __future__ import annotations

from typing import Any


class Current:
    """A read-only view of the running task's identity, like Metaflow's `current`."""

    _fields = (
        "flow_name",
        "run_id",
        "step_name",
        "task_id",
        "retry_count",
        "origin_run_id",
        "namespace",
        "username",
        "tags",
        "parameter_names",
        "tempdir",
        # @project's
        "project_name",
        "branch_name",
        "is_user_branch",
        "is_production",
        "project_flow_name",
    )

    def __init__(self) -> None:
        self._values: dict[str, Any] = {}

    def _set(self, **values: Any) -> None:
        self._values = dict(values)

    def __getattr__(self, name: str) -> Any:
        if name.startswith("__"):
            raise AttributeError(name)
        if name in self._fields or name in self._values:
            return self._values.get(name)
        raise AttributeError(f"current has no attribute '{name}'")

    # The task's identity, typed (every other field is read through __getattr__).
    @property
    def flow_name(self) -> str | None:
        return self._str("flow_name")

    @property
    def run_id(self) -> str | None:
        return self._str("run_id")

    @property
    def step_name(self) -> str | None:
        return self._str("step_name")

    @property
    def task_id(self) -> str | None:
        return self._str("task_id")

    def _str(self, name: str) -> str | None:
        value = self._values.get(name)
        return None if value is None else str(value)

    def _update(self, **values: Any) -> None:
        """Add fields (a decorator's, say) to what the running task knows."""
        self._values.update(values)

    def __contains__(self, name: str) -> bool:
        return self.get(name) is not None

    def get(self, name: str, default: Any = None) -> Any:
        try:
            value = getattr(self, name)
        except AttributeError:
            return default
        return default if value is None else value

    @property
    def task(self) -> Any:
        """The client's Task of the running task (None outside a task)."""
        if not self.is_running_flow:
            return None
        from aflow.client import Task
        from aflow.client.core import AsyncTask, open_client_store

        # Not looked up: the running task has no record yet, and this is it.
        v = self._values
        core = AsyncTask(
            open_client_store(), v["flow_name"], v["run_id"], v["step_name"], v["task_id"]
        )
        return Task._of(core)

    @property
    def run(self) -> Any:
        """The client's Run of the running run (None outside a task)."""
        if not self.is_running_flow:
            return None
        from aflow.client import Run

        return Run(f"{self.flow_name}/{self.run_id}", _namespace_check=False)

    @property
    def card(self) -> Any:
        """The step's cards (`@card`): `current.card.append(Markdown(...))`, `current.card["id"]`."""
        from aflow.cards.collector import current_cards

        return current_cards()

    @property
    def is_running_flow(self) -> bool:
        return "task_id" in self._values

    @property
    def pathspec(self) -> str | None:
        v = self._values
        if not v:
            return None
        return f"{v['flow_name']}/{v['run_id']}/{v['step_name']}/{v['task_id']}"

    def __repr__(self) -> str:
        return f"current({self.pathspec or 'not in a task'})"


current = Current()
