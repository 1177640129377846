"""A card's data as one self-contained HTML document: styles, scripts and data inlined.

The document carries the card's data as JSON and the same renderer `aflow ui` uses
(static/card.js, static/card.css); when the card has a chart it also inlines the vendored,
pinned Vega libraries (vendor/). Nothing is fetched when it opens, so it works offline, from a
file, or out of an air-gapped bucket.
"""

from __future__ import annotations

import functools
import html
import json
from pathlib import Path
from typing import Any

STATIC = Path(__file__).parent / "static"
VENDOR = Path(__file__).parent / "vendor"
VEGA_FILES = ("vega.min.js", "vega-lite.min.js", "vega-embed.min.js", "vega-interpreter.min.js")


@functools.cache
def _text(path: Path) -> str:
    text = path.read_text(encoding="utf-8")
    # Inlined in a <script> or <style>: the text must not be able to end its element early.
    return text.replace("</script", "<\\/script").replace("</style", "<\\/style")


def _json_for_script(data: Any) -> str:
    text = json.dumps(data, default=str, separators=(",", ":"))
    return text.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")


def has_chart(components: list[dict[str, Any]]) -> bool:
    for c in components:
        if c.get("type") == "vega":
            return True
        inner = c.get("contents") or []
        rows = c.get("rows") or []
        if has_chart(inner) or any(has_chart([x for x in row if isinstance(x, dict)]) for row in rows):
            return True
    return False


def card_title(data: dict[str, Any]) -> str:
    name = data.get("id") or data.get("type") or "card"
    return f"{name} · {data.get('pathspec', '')}"


def page_assets() -> tuple[str, str]:
    """The renderer's styles and script, read once per process."""
    return _text(STATIC / "card.css"), _text(STATIC / "card.js")


def card_html(data: dict[str, Any]) -> str:
    css, js = page_assets()
    scripts = ""
    if has_chart(data.get("components", [])):
        scripts = "".join(f"<script>{_text(VENDOR / f)}</script>\n" for f in VEGA_FILES)
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{html.escape(card_title(data))}</title>
<style>{css}</style>
</head>
<body class="aflow-card-page">
<div id="aflow-card" class="aflow-card"></div>
<script type="application/json" id="aflow-card-data">{_json_for_script(data)}</script>
{scripts}<script>{js}</script>
</body></html>
"""
