"""Card components that carry pictures: `Image` (bytes, a PIL image, a matplotlib figure) as a
data: URL, and `VegaChart` (a Vega-Lite spec, or an Altair chart) drawn by the bundled vega-embed.
PIL, matplotlib and Altair are never imported here: their objects are recognised by their module.
"""

from __future__ import annotations

import base64
import io
from typing import Any

from aflow.cards.components import Component

_SIGNATURES = (
    (b"\x89PNG", "image/png"),
    (b"\xff\xd8", "image/jpeg"),
    (b"GIF8", "image/gif"),
    (b"RIFF", "image/webp"),
)


def _image_type(data: bytes) -> str:
    for magic, mime in _SIGNATURES:
        if data.startswith(magic):
            return mime
    head = data[:256].lstrip().lower()
    if head.startswith(b"<svg") or (head.startswith(b"<?xml") and b"<svg" in data[:2048].lower()):
        return "image/svg+xml"
    raise ValueError("Image needs PNG, JPEG, GIF, WebP or SVG bytes, a PIL image or a matplotlib figure")


def _png_of_pil(image: Any) -> bytes:
    out = io.BytesIO()
    image.save(out, format="PNG")
    return out.getvalue()


def _png_of_matplotlib(plot: Any) -> bytes:
    figure = plot.get_figure() if hasattr(plot, "get_figure") and not hasattr(plot, "savefig") else plot
    figure = getattr(figure, "figure", figure)  # a SubFigure or an Axes' figure
    out = io.BytesIO()
    figure.savefig(out, format="png", bbox_inches="tight")
    return out.getvalue()


def _image_bytes(src: Any) -> bytes:
    if isinstance(src, bytes | bytearray | memoryview):
        return bytes(src)
    if type(src).__module__.startswith("PIL"):
        return _png_of_pil(src)
    if type(src).__module__.startswith("matplotlib"):
        return _png_of_matplotlib(src)
    raise TypeError(
        f"Image got a {type(src).__name__}: give image bytes, a PIL image or a matplotlib figure"
    )


class Image(Component):
    kind = "image"
    REALTIME_UPDATABLE = True

    def __init__(self, src: Any = None, label: str | None = None, disable_updates: bool = False) -> None:
        super().__init__()
        self.src = src
        self.label = label

    @classmethod
    def from_pil_image(cls, pilimage: Any, label: str | None = None) -> Image:
        return cls(_png_of_pil(pilimage), label)

    @classmethod
    def from_matplotlib(cls, plot: Any, label: str | None = None) -> Image:
        """A matplotlib Figure (or Axes), as a PNG taken now: later drawing does not change it."""
        return cls(_png_of_matplotlib(plot), label)

    def update(self, image: Any, label: str | None = None) -> None:
        self.src = image
        if label is not None:
            self.label = label

    def data(self) -> dict[str, Any]:
        if self.src is None:
            return {"src": None, "label": self.label}
        raw = _image_bytes(self.src)
        encoded = base64.b64encode(raw).decode("ascii")
        return {"src": f"data:{_image_type(raw)};base64,{encoded}", "label": self.label}


class VegaChart(Component):
    """A Vega-Lite (or Vega) spec, drawn by the bundled vega-embed."""

    kind = "vega"
    REALTIME_UPDATABLE = True

    def __init__(self, spec: dict[str, Any], show_controls: bool = False) -> None:
        super().__init__()
        self.spec = spec
        self.show_controls = show_controls

    @classmethod
    def from_altair_chart(cls, altair_chart: Any) -> VegaChart:
        return cls(altair_chart.to_dict())

    def update(self, spec: dict[str, Any] | None = None) -> None:
        if spec is not None:
            self.spec = spec.to_dict() if hasattr(spec, "to_dict") else spec

    def data(self) -> dict[str, Any]:
        import json

        spec = self.spec.to_dict() if hasattr(self.spec, "to_dict") else self.spec
        json.dumps(spec)  # fails here, naming the component, rather than in the browser
        return {"spec": spec}
