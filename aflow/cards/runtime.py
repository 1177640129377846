"""The task side of `@card`: set up `current.card` before the step runs, save the cards after.

`TaskCards.start` reads the step's cards from its TaskSpec (`decorators["card"]["cards"]`) and
installs the collector as `current.card`; `refresh()` saves a card's data while the task runs (a
dynamic card); `finish` renders every card when the task has succeeded (as Metaflow does) and saves
its data and HTML document before the task record is committed. Rendering runs in a thread bounded
by the card's `timeout`: a card that fails or takes too long is saved as an error card, and nothing
here ever fails the task.
"""

from __future__ import annotations

import threading
import time
import traceback
from typing import Any

from aflow.cards.collector import CardCollector, CardSlot, set_current_cards, warn
from aflow.cards.components import Error, components_data
from aflow.cards.render import card_html
from aflow.cards.storage import CardRef, save_card
from aflow.stores.base import BlockingObjectStore
from aflow.stores.records import TaskRecord


def prewarm() -> None:
    """Import and read what rendering a card needs (for a process that forks tasks)."""
    from aflow.cards import default_card, render  # noqa: F401
    from aflow.ui import dag, markup, preview  # noqa: F401

    render.page_assets()


class TaskCards:
    def __init__(self, spec: Any, store: BlockingObjectStore, flow_cls: type, slots: list[CardSlot]):
        self.spec = spec
        self.store = store
        self.flow_cls = flow_cls
        self.slots = slots
        self.started = time.time()
        self.collector = CardCollector(slots, self._save_running)

    @classmethod
    def start(cls, spec: Any, store: BlockingObjectStore, flow_cls: type) -> TaskCards | None:
        """The step's cards as `current.card`, or None (and an empty `current.card`) without any."""
        set_current_cards(None)
        settings = (spec.decorators.get("card") or {}).get("cards") or []
        if not settings:
            return None
        try:
            slots = [
                CardSlot(
                    index=i,
                    type=str(s.get("type") or "default"),
                    id=s.get("id"),
                    options=dict(s.get("options") or {}),
                    timeout=float(s.get("timeout") or 45),
                    refresh_interval=float(s.get("refresh_interval") or 0),
                    customize=str(s.get("customize")) == "True",
                )
                for i, s in enumerate(settings)
            ]
            cards = cls(spec, store, flow_cls, slots)
        except Exception as e:
            warn(f"cards are off for this task: {type(e).__name__}: {e}")
            return None
        set_current_cards(cards.collector)
        return cards

    def _ref(self, slot: CardSlot) -> CardRef:
        s = self.spec
        where = (s.flow_name, s.run_id, s.step, s.task_id, s.attempt)
        return CardRef(*where, slot.index, slot.type, slot.id)

    def _base(self, slot: CardSlot, final: bool) -> dict[str, Any]:
        return {
            "format": 1,
            "type": slot.type,
            "id": slot.id,
            "pathspec": self.spec.pathspec,
            "attempt": self.spec.attempt,
            "final": final,
            "refresh_interval": slot.refresh_interval,
            "created_at": time.time(),
            "components": [],
        }

    def _build(
        self, slot: CardSlot, final: bool, flow: Any, record: TaskRecord | None
    ) -> dict[str, Any]:
        from aflow.cards.default_card import default_sections, task_facts

        data = self._base(slot, final)
        own = components_data(slot.components)
        if slot.type == "blank":
            title = slot.options.get("title")
            data["components"] = ([{"type": "heading", "text": str(title)}] if title else []) + own
        elif slot.type == "default":
            head = [task_facts(self.spec, record, self.started)]
            rest = []
            if final and flow is not None and record is not None:
                from aflow.graph import graph_for

                graph = graph_for(self.flow_cls).to_dict().get("steps", {})
                limit = slot.options.get("max_artifact_size")
                rest = default_sections(self.spec, flow, record, self.store, graph, limit)
            data["components"] = head + own + rest
        elif slot.type == "html":
            name = slot.options.get("artifact") or slot.options.get("attribute") or "html"
            value = getattr(flow, name, None) if flow is not None else None
            if value is None:
                data["components"] = [
                    Error(f"the step set no artifact '{name}' to show", "Nothing to show").to_data()
                ]
            else:
                data["components"] = [{"type": "html", "html": str(value)}]
        else:
            data["components"] = [
                Error(
                    f"there is no card type '{slot.type}' (known: default, blank, html)",
                    "Unknown card type",
                ).to_data()
            ]
        return data

    def _render(
        self, slot: CardSlot, final: bool, flow: Any, record: TaskRecord | None
    ) -> tuple[dict[str, Any], str | None]:
        """(data, html) within the card's timeout; an error card when it fails or runs over."""
        out: list[Any] = []

        def work() -> None:
            try:
                data = self._build(slot, final, flow, record)
                out.append((data, card_html(data) if final else None))
            except BaseException as e:
                out.append(e)

        worker = threading.Thread(target=work, name=f"card-{slot.index}", daemon=True)
        worker.start()
        worker.join(slot.timeout if slot.timeout > 0 else None)
        if out and isinstance(out[0], tuple):
            return out[0]
        problem = (
            out[0]
            if out
            else f"rendering the card took longer than its timeout ({slot.timeout:g} s)"
        )
        data = self._base(slot, final)
        data["components"] = [Error(problem, "This card could not be rendered").to_data()]
        data["error"] = True
        return data, card_html(data) if final else None

    def _save_running(self, slot: CardSlot, final: bool) -> None:
        try:
            data, html = self._render(slot, False, None, None)
            save_card(self.store, self._ref(slot), data, html)
        except Exception as e:
            warn(f"card {slot.index} ({slot.type}) was not refreshed: {type(e).__name__}: {e}")

    def finish(self, flow: Any, record: TaskRecord) -> None:
        """Render and save every card of a task that succeeded; never raises."""
        for slot in self.slots:
            try:
                data, html = self._render(slot, True, flow, record)
                save_card(self.store, self._ref(slot), data, html)
            except Exception:
                warn(f"card {slot.index} ({slot.type}) was not saved:\n{traceback.format_exc()}")
        set_current_cards(None)
