"""`profile`: time a block of a step, as Metaflow's `from metaflow import profile` does.

`with profile("load"):` prints when the block starts and how long it took, in milliseconds;
`with profile("load", stats_dict=d):` prints nothing and adds the milliseconds to `d["load"]`.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Iterator


@contextlib.contextmanager
def profile(label: str, stats_dict: dict[str, int] | None = None) -> Iterator[None]:
    if stats_dict is None:
        print(f"PROFILE: {label} starting")
    started = time.perf_counter()
    yield
    took = int((time.perf_counter() - started) * 1000)
    if stats_dict is None:
        print(f"PROFILE: {label} completed in {took}ms")
    else:
        stats_dict[label] = stats_dict.get(label, 0) + took
