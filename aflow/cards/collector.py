"""`current.card`: the cards of the running step and the components the step adds to them.

Which card `current.card.append()` edits follows Metaflow's rules: only cards whose type takes
components ("default", "blank") are editable; with one editable card it is that one; with several,
the one marked `customize=True`, else the only one without an `id`; otherwise appends are dropped
with a warning (never an error: a report must not fail the step). `current.card["id"]` edits the
card with that id. `refresh()` saves the cards' current state for viewers while the task runs, at
most once per card's `refresh_interval` seconds. Outside a step with `@card`, `current.card` still
exists and warns once that what is appended goes nowhere.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any

from aflow.cards.components import Component

EDITABLE_TYPES = ("default", "blank")


def warn(message: str) -> None:
    print(f"[@card WARNING] {message}", file=sys.stderr)


class CardComponents:
    """The components of one card, in order; `id=` names one so it can be found and updated."""

    def __init__(self, components: Iterable[Component] = ()) -> None:
        self._items: list[Component] = list(components)
        self.changed_at = time.time()

    def _touched(self) -> None:
        self.changed_at = time.time()

    def append(self, component: Component, id: str | None = None) -> None:
        if id is not None:
            if id in self:
                warn(f"a component with id '{id}' is already on the card: replacing it")
                self[id] = component
                return
            component.id = id
        self._items.append(component)
        self._touched()

    def extend(self, components: Iterable[Component]) -> None:
        self._items.extend(components)
        self._touched()

    def clear(self) -> None:
        self._items.clear()
        self._touched()

    def _index(self, key: str) -> int:
        for i, c in enumerate(self._items):
            if getattr(c, "id", None) == key:
                return i
        raise KeyError(f"the card has no component with id '{key}'")

    def __getitem__(self, key: str) -> Component:
        return self._items[self._index(key)]

    def __setitem__(self, key: str, component: Component) -> None:
        component.id = key
        try:
            self._items[self._index(key)] = component
        except KeyError:
            self._items.append(component)
        self._touched()

    def __delitem__(self, key: str) -> None:
        del self._items[self._index(key)]
        self._touched()

    def __contains__(self, key: object) -> bool:
        return any(getattr(c, "id", None) == key for c in self._items)

    def __iter__(self) -> Iterator[Component]:
        return iter(list(self._items))

    def __len__(self) -> int:
        return len(self._items)

    def keys(self) -> list[str]:
        return [c.id for c in self._items if c.id]

    def values(self) -> list[Component]:
        return list(self._items)


@dataclass
class CardSlot:
    """One `@card` on the running step: its settings and its components."""

    index: int
    type: str
    id: str | None
    options: dict[str, Any]
    timeout: float
    refresh_interval: float
    customize: bool
    components: CardComponents = field(default_factory=CardComponents)
    last_saved: float = 0.0

    @property
    def editable(self) -> bool:
        return self.type in EDITABLE_TYPES


Saver = Callable[[CardSlot, bool], None]


class CardCollector:
    """What `current.card` is inside a task (and, with no cards, outside one)."""

    def __init__(self, slots: list[CardSlot] | None = None, save: Saver | None = None) -> None:
        self._slots = slots or []
        self._save = save
        self._warned: set[str] = set()
        self._default = _default_editable(self._slots, self._warn_once)

    def _warn_once(self, message: str) -> None:
        if message not in self._warned:
            self._warned.add(message)
            warn(message)

    @property
    def slots(self) -> list[CardSlot]:
        return self._slots

    def _default_components(self) -> CardComponents | None:
        if self._default is None:
            if not self._slots:
                self._warn_once(
                    "this step has no @card: what is added to current.card is not shown anywhere "
                    "(add @card to the step, or run with --with card)"
                )
            else:
                self._warn_once(
                    "current.card.append() cannot tell which of this step's cards to edit: give "
                    "one @card(customize=True), or use current.card['<id>']"
                )
            return None
        return self._default.components

    def append(self, component: Component, id: str | None = None) -> None:
        target = self._default_components()
        if target is not None:
            target.append(component, id=id)

    def extend(self, components: Iterable[Component]) -> None:
        target = self._default_components()
        if target is not None:
            target.extend(components)

    def clear(self) -> None:
        target = self._default_components()
        if target is not None:
            target.clear()

    @property
    def components(self) -> CardComponents:
        """The default editable card's components (by id: `current.card.components["bar"]`)."""
        target = self._default_components()
        return target if target is not None else CardComponents()

    def _slot(self, card_id: str) -> CardSlot | None:
        for slot in self._slots:
            if slot.id == card_id:
                return slot
        return None

    def __getitem__(self, card_id: str) -> CardComponents:
        slot = self._slot(card_id)
        if slot is None or not slot.editable:
            why = "no @card has" if slot is None else f"the {slot.type} card does not take components:"
            self._warn_once(f"current.card['{card_id}']: {why} id '{card_id}'; it is not shown")
            return CardComponents()
        return slot.components

    def __setitem__(self, card_id: str, components: Iterable[Component]) -> None:
        target = self[card_id]
        target.clear()
        target.extend(components)

    def __contains__(self, card_id: object) -> bool:
        return any(s.id == card_id for s in self._slots)

    def get(self, type: str | None = None) -> list[list[Component]]:
        return [list(s.components) for s in self._slots if type is None or s.type == type]

    def refresh(self, data: Any = None, force: bool = False) -> None:
        """Save every editable card as it is now, so viewers (aflow ui, card view) see progress.
        Skipped for a card saved less than its refresh_interval ago, unless force."""
        if self._save is None:
            return
        now = time.time()
        for slot in self._slots:
            if not slot.editable:
                continue
            if not force and now - slot.last_saved < slot.refresh_interval:
                continue
            slot.last_saved = now
            self._save(slot, False)


def _default_editable(slots: list[CardSlot], warn_once: Callable[[str], None]) -> CardSlot | None:
    editable = [s for s in slots if s.editable]
    if len(editable) <= 1:
        return editable[0] if editable else None
    customized = [s for s in editable if s.customize]
    if len(customized) > 1:
        warn_once("more than one @card(customize=True) on the step: current.card.append() edits none")
        return None
    if customized:
        return customized[0]
    without_id = [s for s in editable if s.id is None]
    return without_id[0] if len(without_id) == 1 else None


_current = CardCollector()


def current_cards() -> CardCollector:
    return _current


def set_current_cards(collector: CardCollector | None) -> None:
    global _current
    _current = collector if collector is not None else CardCollector()
