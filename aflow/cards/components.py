"""Card components: what a step appends to `current.card`, each turned into plain JSON data.

A component is a small object with `to_data()`, a dict the card renderer (cards/static/card.js, in
the card's HTML document and in `aflow ui`) draws from. Text is data, never markup: the renderer sets
it as text, so `<b>` in a value shows as `<b>`. Only `Markdown` (rendered here with raw HTML
disabled) and `Html` (drawn in a sandboxed frame without scripts) carry markup, and they say so.
Pictures (`Image`, `VegaChart`) live in media.py, code viewers in viewers.py.
"""

from __future__ import annotations

import traceback
from collections.abc import Iterable, Sequence
from typing import Any

MAX_TABLE_ROWS = 1000  # a DataFrame shows its first rows: a card is a report, not a data dump


class Component:
    """A card component. `id` lets `current.card.components[id]` find it again to update it."""

    kind = ""
    REALTIME_UPDATABLE = False

    def __init__(self) -> None:
        self.component_id: str | None = None

    @property
    def id(self) -> str | None:
        return self.component_id

    @id.setter
    def id(self, value: str | None) -> None:
        self.component_id = value

    def data(self) -> dict[str, Any]:
        raise NotImplementedError

    def to_data(self) -> dict[str, Any]:
        """The component as JSON data; a component that cannot be drawn becomes an error block."""
        try:
            out = {"type": self.kind, **self.data()}
        except Exception as e:
            out = Error(e, f"{type(self).__name__} could not be rendered").to_data()
        if self.component_id:
            out["id"] = self.component_id
        return out

    def update(self, *args: Any, **kwargs: Any) -> None:
        raise TypeError(f"{type(self).__name__} cannot be updated; replace it instead")

    def __repr__(self) -> str:
        return f"<{type(self).__name__}{f' {self.component_id}' if self.component_id else ''}>"


def _markdown_html(text: str) -> str:
    from markdown_it import MarkdownIt

    # Raw HTML in the text is escaped (html=False); links like javascript: are refused by
    # markdown-it's link validation.
    return str(MarkdownIt("commonmark", {"html": False}).enable("table").render(text))


class Markdown(Component):
    kind = "markdown"
    REALTIME_UPDATABLE = True

    def __init__(self, text: str | None = "") -> None:
        super().__init__()
        self.text = text or ""

    def update(self, text: str | None = "") -> None:
        self.text = text or ""

    def data(self) -> dict[str, Any]:
        return {"html": _markdown_html(str(self.text))}


class Html(Component):
    """HTML the author vouches for, drawn in a sandboxed frame (no scripts, no access to the page)."""

    kind = "html"

    def __init__(self, html: str) -> None:
        super().__init__()
        self.html = html

    def data(self) -> dict[str, Any]:
        return {"html": str(self.html)}


def _cell(value: Any) -> Any:
    if isinstance(value, Component):
        return value.to_data()
    if value is None or isinstance(value, bool | int | float):
        return {"type": "text", "text": "" if value is None else str(value)}
    return {"type": "text", "text": str(value)}


class Table(Component):
    """Rows of cells; a cell is a value (shown as text) or another component."""

    kind = "table"
    REALTIME_UPDATABLE = True

    def __init__(
        self,
        data: Sequence[Sequence[Any]] | None = None,
        headers: Sequence[Any] | None = None,
        disable_updates: bool = False,
    ) -> None:
        super().__init__()
        self.rows = [list(r) for r in (data or [])]
        self.headers = [str(h) for h in headers] if headers else []
        self.note = ""

    @classmethod
    def from_dataframe(cls, dataframe: Any, truncate: bool = True) -> Table:
        """A pandas DataFrame: its columns as headers, its first 1,000 rows (all when not truncate)."""
        total = len(dataframe)
        shown = dataframe.head(MAX_TABLE_ROWS) if truncate else dataframe
        table = cls(
            [[_plain(v) for v in row] for row in shown.itertuples(index=False, name=None)],
            [str(c) for c in dataframe.columns],
        )
        if len(shown) < total:
            table.note = f"the first {len(shown):,} of {total:,} rows"
        return table

    def update(self, data: Sequence[Sequence[Any]] | None = None) -> None:
        self.rows = [list(r) for r in (data or [])]

    def update_cell(self, row: int, col: int, value: Any) -> None:
        self.rows[row][col] = value

    def data(self) -> dict[str, Any]:
        out = {"headers": self.headers, "rows": [[_cell(c) for c in r] for r in self.rows]}
        if self.note:
            out["note"] = self.note
        return out


def _plain(value: Any) -> Any:
    """A DataFrame cell as a printable value (numpy scalars, timestamps)."""
    if isinstance(value, Component):
        return value
    item = getattr(value, "item", None)
    if callable(item) and type(value).__module__ == "numpy":
        try:
            return item()
        except Exception:
            return str(value)
    return value

class Artifact(Component):
    """Any value, shown as aflow ui previews it: type, shape, a clipped repr."""

    kind = "artifact"
    REALTIME_UPDATABLE = True

    def __init__(self, artifact: Any, name: str | None = None, compressed: bool = True) -> None:
        super().__init__()
        self.artifact = artifact
        self.name = name
        self.compressed = compressed

    def update(self, artifact: Any) -> None:
        self.artifact = artifact

    def data(self) -> dict[str, Any]:
        from aflow.ui.preview import describe  # the previews aflow ui shows

        shown = describe(self.artifact)
        text = shown.text if self.compressed else repr(self.artifact)
        return {"name": self.name, "value_type": shown.type, "text": text}

class ProgressBar(Component):
    kind = "progress"
    REALTIME_UPDATABLE = True

    def __init__(
        self,
        max: float = 100,
        label: str | None = None,
        value: float = 0,
        unit: str | None = None,
        metadata: str | None = None,
    ) -> None:
        super().__init__()
        self.max, self.label, self.value, self.unit, self.metadata = max, label, value, unit, metadata

    def update(self, new_value: float, metadata: str | None = None) -> None:
        self.value = new_value
        if metadata is not None:
            self.metadata = metadata

    def data(self) -> dict[str, Any]:
        return {
            "max": float(self.max),
            "value": float(self.value),
            "label": self.label,
            "unit": self.unit,
            "details": self.metadata,
        }


class Error(Component):
    """An exception (or a message) shown as an error block, with its traceback."""

    kind = "error"

    def __init__(self, exception: BaseException | str, title: str | None = None) -> None:
        super().__init__()
        self.exception = exception
        self.title = title

    def data(self) -> dict[str, Any]:
        e = self.exception
        if isinstance(e, BaseException):
            text = "".join(traceback.format_exception(e)).rstrip()
        else:
            text = str(e)
        return {"title": self.title or "Error", "text": text}


class ValueBox(Component):
    """One key figure: a title, the value, a subtitle and a note on its change."""

    kind = "valuebox"
    REALTIME_UPDATABLE = True
    THEMES = ("default", "success", "warning", "danger")

    def __init__(
        self,
        title: str | None = None,
        value: Any = "",
        subtitle: str | None = None,
        theme: str | None = None,
        change_indicator: str | None = None,
    ) -> None:
        super().__init__()
        self.title, self.value, self.subtitle = title, value, subtitle
        self.theme, self.change_indicator = theme, change_indicator

    def update(self, **changes: Any) -> None:
        for name, value in changes.items():
            if name not in ("title", "value", "subtitle", "theme", "change_indicator"):
                raise TypeError(f"ValueBox.update() has no option {name}")
            setattr(self, name, value)

    def data(self) -> dict[str, Any]:
        theme = self.theme if self.theme in self.THEMES else "default"
        return {
            "title": self.title, "value": str(self.value), "subtitle": self.subtitle,
            "theme": theme, "change": self.change_indicator,
        }  # fmt: skip

def components_data(components: Iterable[Component]) -> list[dict[str, Any]]:
    out = []
    for c in components:
        if isinstance(c, Component):
            out.append(c.to_data())
        else:
            out.append(
                Error(f"{type(c).__name__} is not a card component", "Not a component").to_data()
            )
    return out
