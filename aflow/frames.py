"""The foreach frame: one enclosing foreach of a task, as the engine makes it, the task spec and the
task record carry it, the task runtime reads its item from it, and the client shows it.

It travels in msgpack as a 4-item list (msgpack has no tuples); `Frame.of` reads one back. A module
of its own at the root so every layer can import it without importing another layer.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any, NamedTuple


class Frame(NamedTuple):
    step: str  # the foreach's split step
    index: int  # type: ignore[assignment]  # this task's item (shadows tuple.index on purpose)
    num_splits: int  # how many items
    items: str | None  # digest of the items blob each child reads its own item from

    @classmethod
    def of(cls, raw: Sequence[Any]) -> Frame:
        return raw if isinstance(raw, Frame) else cls(*raw)


def frames(raw: Iterable[Sequence[Any]]) -> list[Frame]:
    """A foreach stack read back from msgpack (lists) as Frames."""
    return [Frame.of(f) for f in raw]
