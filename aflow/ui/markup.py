"""Small HTML helpers the pages share: escaping, times, durations, sizes, badges and the page shell.

Every value that comes from the store (names, tags, log lines, reprs, tracebacks) goes through `esc`
before it reaches a page. No templates engine: the pages are small enough to be plain functions.
"""

from __future__ import annotations

import html
import time
from urllib.parse import quote, urlencode

STATUS_WORDS = {
    "done": "done",
    "failed": "failed",
    "running": "running",
    "retrying": "retrying",
    "stopped": "stopped",
    "caught": "caught",
    "cancelled": "cancelled",
    "dead": "dead",
    "pending": "pending",
    "partial": "incomplete",
    "not-run": "not run",
}


def esc(value: object) -> str:
    return html.escape(str(value), quote=True)


def url(*parts: str, **query: object) -> str:
    """A path from parts (each quoted) and a query of the non-empty values."""
    path = "/" + "/".join(quote(p, safe="") for p in parts)
    kept = {k: v for k, v in query.items() if v not in (None, "", False)}
    return path + (f"?{urlencode(kept)}" if kept else "")


def when(seconds: float | None) -> str:
    return time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(seconds)) if seconds else "-"


def clock(seconds: float | None) -> str:
    return time.strftime("%H:%M:%S", time.localtime(seconds)) if seconds else "-"


def span(seconds: float | None) -> str:
    if seconds is None or seconds < 0:
        return "-"
    if seconds < 1:
        return f"{seconds * 1000:.0f}ms" if seconds >= 0.001 else "<1ms"
    if seconds < 10:
        return f"{seconds:.2f}s"
    if seconds < 60:
        return f"{seconds:.1f}s"
    if seconds < 3600:
        return f"{int(seconds // 60)}m{int(seconds % 60):02d}s"
    return f"{int(seconds // 3600)}h{int(seconds % 3600 // 60):02d}m"


def size(n: int) -> str:
    value = float(n)
    for unit in ("B", "KB", "MB", "GB"):
        if value < 1024 or unit == "GB":
            return f"{n} B" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    return f"{n} B"


def badge(status: str) -> str:
    return f'<span class="badge {esc(status)}">{esc(STATUS_WORDS.get(status, status))}</span>'


def page(title: str, crumbs: list[tuple[str, str | None]], body: str, live: bool) -> str:
    """A whole page: the header with its breadcrumbs, the body, and the script that keeps it live."""
    trail = " <span class='sep'>/</span> ".join(
        f'<a href="{esc(href)}">{esc(text)}</a>' if href else f"<span>{esc(text)}</span>"
        for text, href in crumbs
    )
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{esc(title)} · aflow</title>
<link rel="stylesheet" href="/static/ui.css">
<link rel="icon" href="/static/favicon.svg" type="image/svg+xml">
</head>
<body data-live="{"1" if live else "0"}">
<header class="top"><a class="brand" href="/">aflow</a><nav class="crumbs">{trail}</nav>
<span id="live-state" class="live-state" title="updates arrive without reloading"></span></header>
<main>{body}</main>
<script src="/static/ui.js"></script>
</body></html>"""
