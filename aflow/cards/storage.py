"""Where a task's cards live in the store, and reading and writing them.

Each card is two objects beside the task's records, in any store (local, S3, Azure, GCS):

    <Flow>/<run_id>/<step>/<task_id>/cards/<attempt>.<n>.<type>[.<id>].json   its data
    <Flow>/<run_id>/<step>/<task_id>/cards/<attempt>.<n>.<type>[.<id>].html   the HTML document

The data is what `aflow ui` draws natively and what a dynamic card rewrites while the task runs;
the HTML document (scripts and styles inlined) is written when the task ends, and opens offline.
A card of a running task has no document yet: readers render one from its data.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Any

from aflow.exception import AflowException
from aflow.stores.base import BlockingObjectStore, NotFound, ObjectStore
from aflow.stores.records import task_prefix

_NAME = re.compile(r"^[A-Za-z0-9_-]+$")


def check_card_name(option: str, value: Any) -> None:
    if not isinstance(value, str) or not _NAME.match(value):
        raise AflowException(
            f"@card({option}={value!r}): {option} must be letters, digits, '_' or '-'"
        )


@dataclass(frozen=True)
class CardRef:
    """One stored card of one task attempt."""

    flow: str
    run_id: str
    step: str
    task_id: str
    attempt: int
    index: int
    type: str
    id: str | None

    @property
    def name(self) -> str:
        return f"{self.attempt}.{self.index}.{self.type}" + (f".{self.id}" if self.id else "")

    @property
    def pathspec(self) -> str:
        return f"{self.flow}/{self.run_id}/{self.step}/{self.task_id}"

    def key(self, ext: str) -> str:
        return f"{cards_prefix(self.flow, self.run_id, self.step, self.task_id)}/{self.name}.{ext}"

    @classmethod
    def parse(cls, flow: str, run_id: str, step: str, task_id: str, filename: str) -> CardRef | None:
        stem, dot, ext = filename.rpartition(".")
        bits = stem.split(".")
        if not dot or ext != "json" or len(bits) not in (3, 4):
            return None
        if not (bits[0].isdigit() and bits[1].isdigit()):
            return None
        card_id = bits[3] if len(bits) == 4 else None
        return cls(flow, run_id, step, task_id, int(bits[0]), int(bits[1]), bits[2], card_id)


def cards_prefix(flow: str, run_id: str, step: str, task_id: str) -> str:
    return f"{task_prefix(flow, run_id, step, task_id)}/cards"


def pack_data(data: dict[str, Any]) -> bytes:
    return json.dumps(data, default=str, separators=(",", ":")).encode()


def save_card(
    store: BlockingObjectStore, ref: CardRef, data: dict[str, Any], html: str | None
) -> None:
    """The HTML first, then the data: a viewer that finds the final data finds the document."""
    if html is not None:
        store.put(ref.key("html"), [html.encode()])
    store.put(ref.key("json"), [pack_data(data)])


async def list_cards(
    store: ObjectStore, flow: str, run_id: str, step: str, task_id: str, attempt: int | None = None
) -> list[CardRef]:
    """The cards of `attempt`, or of the latest attempt that has any, in decorator order."""
    names = await store.list(cards_prefix(flow, run_id, step, task_id))
    refs = [r for n in names if (r := CardRef.parse(flow, run_id, step, task_id, n))]
    if not refs:
        return []
    chosen = attempt if attempt is not None else max(r.attempt for r in refs)
    return sorted((r for r in refs if r.attempt == chosen), key=lambda r: r.index)


async def read_data(store: ObjectStore, ref: CardRef) -> dict[str, Any]:
    data: dict[str, Any] = json.loads(bytes(await store.get(ref.key("json"))))
    return data


async def read_html(store: ObjectStore, ref: CardRef) -> str:
    """The stored document; for a card of a task still running, one rendered from its data."""
    try:
        return bytes(await store.get(ref.key("html"))).decode()
    except NotFound:
        from aflow.cards.render import card_html

        return card_html(await read_data(store, ref))
