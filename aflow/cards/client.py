"""Reading cards back: `get_cards(task)` for notebooks and scripts, and `find_cards` for the CLI and
the UI (async, over the client's core).

A resumed run's task that was reused from its origin run has no cards of its own: its cards are
the origin task's.
"""

from __future__ import annotations

import html
import os
import sys
import tempfile
import webbrowser
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from aflow.cards.storage import CardRef, list_cards, read_data, read_html
from aflow.client.core import AsyncTask
from aflow.stores.base import ObjectStore


async def find_cards(
    task: AsyncTask, id: str | None = None, type: str | None = None
) -> list[CardRef]:
    """The task's cards (its chosen attempt's, else its latest attempt with any), filtered."""
    refs = await list_cards(task.store, task.flow, task.run_id, task.step, task.id, task.attempt)
    if not refs:
        record = await task.record_or_none()
        if record is not None and record.cloned_from:
            flow, run_id, step, task_id = record.cloned_from.split("/")
            refs = await list_cards(task.store, flow, run_id, step, task_id)
    return [r for r in refs if (id is None or r.id == id) and (type is None or r.type == type)]


@dataclass(frozen=True)
class CardSettings:
    """AFLOW_NO_BROWSER=1: `aflow card view` opens no browser (it prints the file's path)."""

    no_browser: bool = False

    @classmethod
    def from_env(cls) -> CardSettings:
        return cls(no_browser=os.environ.get("AFLOW_NO_BROWSER") == "1")


def open_in_browser(path: str) -> bool:
    """Open a file in the desktop's browser; False (and nothing started) where there is no desktop:
    on a server, Python's webbrowser would fall back to a text browser in the terminal."""
    desktop = sys.platform in ("darwin", "win32") or any(
        os.environ.get(v) for v in ("DISPLAY", "WAYLAND_DISPLAY", "BROWSER")
    )
    if not desktop or CardSettings.from_env().no_browser:
        return False
    return webbrowser.open(Path(path).resolve().as_uri())


@dataclass
class Card:
    """One card of a task: `.html` is its self-contained document, `.data` what it shows."""

    ref: CardRef
    store: ObjectStore

    @property
    def id(self) -> str | None:
        return self.ref.id

    @property
    def type(self) -> str:
        return self.ref.type

    @property
    def pathspec(self) -> str:
        return self.ref.pathspec

    @property
    def html(self) -> str:
        from aflow.client.portal import call

        return call(read_html, self.store, self.ref)

    @property
    def data(self) -> dict[str, Any]:
        from aflow.client.portal import call

        return call(read_data, self.store, self.ref)

    def get(self) -> str:
        return self.html

    def save(self, path: str | os.PathLike[str]) -> str:
        with open(path, "w", encoding="utf-8") as f:
            f.write(self.html)
        return os.fspath(path)

    def view(self) -> str:
        """Open the card in the browser (a temporary file); returns its path."""
        fd, path = tempfile.mkstemp(prefix=f"card-{self.ref.name}-", suffix=".html")
        os.close(fd)
        self.save(path)
        open_in_browser(path)
        return path

    def _repr_html_(self) -> str:
        # A notebook shows it in a frame of its own: the card's scripts stay out of the notebook.
        return (
            f'<iframe srcdoc="{html.escape(self.html, quote=True)}" '
            'style="width:100%;height:640px;border:0" sandbox="allow-scripts"></iframe>'
        )

    def __repr__(self) -> str:
        return f"Card({self.pathspec}, type={self.type!r}, id={self.id!r})"


def get_cards(
    task: Any, id: str | None = None, type: str | None = None, follow_resumed: bool = True
) -> list[Card]:
    """The cards of a task: a `Task`, or its pathspec "Flow/run_id/step/task_id"."""
    from aflow.client import Task
    from aflow.client.portal import call

    if isinstance(task, str):
        task = Task(task)
    core: AsyncTask = task._core if isinstance(task, Task) else task
    refs = call(find_cards, core, id, type)
    if not follow_resumed:
        refs = [r for r in refs if r.pathspec == core.pathspec]
    return [Card(r, core.store) for r in refs]
