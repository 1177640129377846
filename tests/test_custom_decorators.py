"""user_step_decorator, UserStepDecorator, StepMutator and FlowMutator, run through real flows."""

from __future__ import annotations

import sys
from pathlib import Path

import anyio
import pytest

import aflow
from aflow.exception import AflowException

sys.path.insert(0, str(Path(__file__).parent / "wider_flows"))


def test_custom_decorators_and_mutators(store_root: Path) -> None:
    from custom_decorators_flow import CustomDecoratorsFlow

    for _ in range(2):  # a second run in the same process does not stack the mutations
        run = anyio.run(lambda: aflow.run_flow(CustomDecoratorsFlow))
        assert run.successful, run.error
        start = run["start"].task.data
        # Counted is written outside tagged: its pre_step ran first, its post_step last.
        assert start.trail == ["before start x", "after start"]
        assert start.count == 12 and start.ran and start.env == "yes"
        middle = run["middle"].task.data
        assert middle.skipped_by == "middle" and "should_not_exist" not in middle
        assert run["fails"].task.data.forgiven == "bad but forgiven"
        end = run["end"].task.data
        assert end.final == 7  # a parameter the FlowMutator added, defaulting to a config value
        assert end.project == "mutated_project"  # a flow decorator the FlowMutator added
        assert end.trail[-2:] == ["before end mutated", "after end"]


def test_misuse_is_reported() -> None:
    with pytest.raises(AflowException, match="generator functions"):
        aflow.user_step_decorator(lambda a, b, c: None)

    @aflow.user_step_decorator
    def three(step_name, flow, inputs):
        yield

    with pytest.raises(AflowException, match="4 arguments"):
        three(label="x")


def test_a_recorded_decorator_that_is_no_longer_one_is_named() -> None:
    """The task runtime rebuilds a step's user decorators from (module, qualname, options); a name
    that now resolves to something else (the flow's code changed) is said as such, rather than
    an AttributeError from calling init() on whatever it is."""
    import pickle

    from aflow.user_decorators import run_wrapped

    entry = ["collections", "OrderedDict", pickle.dumps(((), {}))]
    with pytest.raises(AflowException, match=r"collections\.OrderedDict is no longer a step decorator"):
        run_wrapped([entry], "start", None, None, lambda: None, lambda: None)
