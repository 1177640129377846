"""A step's decorators as the scheduler reads them: parsed once per step into a typed record, so the
scheduler asks `settings.retries`, not `decorators["retry"]["times"]` by string key on every attempt.

The decorators themselves (`--with` specs merged with the flow's own) stay dicts: they travel in the
TaskSpec to the task runtime and into the run record as they are.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from aflow.decorators import TimeoutDecorator, compute_of


@dataclass(frozen=True)
class StepSettings:
    retries: int = 0  # @retry(times=)
    minutes_between_retries: float = 0.0
    only_platform_errors: bool = False
    catch: Mapping[str, Any] | None = None  # @catch's settings, handed to its fallback attempt
    timeout_seconds: float | None = None  # @timeout, all units summed
    compute: str | None = None  # "batch" / "kubernetes"; None runs here

    @property
    def remote(self) -> bool:
        return self.compute is not None

    @classmethod
    def of(cls, step: str, decorators: dict[str, dict[str, Any]]) -> StepSettings:
        retry = decorators.get("retry")
        timeout = decorators.get("timeout")
        return cls(
            retries=int(retry["times"]) if retry else 0,
            minutes_between_retries=float(retry["minutes_between_retries"]) if retry else 0.0,
            only_platform_errors=bool(retry["only_platform_errors"]) if retry else False,
            catch=decorators.get("catch"),
            timeout_seconds=TimeoutDecorator(**timeout).seconds_total() if timeout else None,
            compute=compute_of(step, decorators),
        )
