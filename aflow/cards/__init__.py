"""Cards: reports a step attaches to its tasks with `@card`, as in Metaflow.

Components (`Markdown`, `Table`, `Image`, `Artifact`, `VegaChart`, `ProgressBar`, `Error`,
`ValueBox`, `PythonCode`, `JSONViewer`, `YAMLViewer`, and `Html` for markup) are appended to
`current.card` in a step; each card is saved with its task as data plus one self-contained HTML
document (`storage`, `render`), drawn by one renderer (`static/card.js`) in that document and in
`aflow ui`. `get_cards(task)` reads them back in a notebook; `aflow card view/get/list` from the
shell. The task runtime's side is `runtime`; the engine knows no more.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from aflow.cards.components import (
    Artifact,
    Component,
    Error,
    Html,
    Markdown,
    ProgressBar,
    Table,
    ValueBox,
)
from aflow.cards.media import Image, VegaChart
from aflow.cards.viewers import JSONViewer, PythonCode, YAMLViewer

if TYPE_CHECKING:
    from aflow.cards.client import Card, get_cards


def __getattr__(name: str) -> Any:
    # The client (and what it imports) loads only when asked for: a task that renders cards
    # imports this package, and must not pay for the client.
    if name in ("Card", "get_cards"):
        from aflow.cards import client

        return getattr(client, name)
    raise AttributeError(f"module 'aflow.cards' has no attribute '{name}'")


__all__ = [
    "Artifact",
    "Card",
    "Component",
    "Error",
    "Html",
    "Image",
    "JSONViewer",
    "Markdown",
    "ProgressBar",
    "PythonCode",
    "Table",
    "ValueBox",
    "VegaChart",
    "YAMLViewer",
    "get_cards",
]
