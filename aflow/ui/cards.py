"""Cards in `aflow ui`: a "Cards" section on a task's page, drawn natively by the UI's own renderer.

The section names each card's data URL (with a digest of the data, so the page's live stream
re-sends the section when a dynamic card changes); the card renderer (aflow/cards/static/card.js,
served from this origin like every other script) fetches the JSON and draws it, and the vendored
Vega libraries load from here too. No script or style from a card's data ever runs on the page.
"open as a page" shows one card alone, drawn the same way; "download" hands over the card's own
self-contained HTML document as a file (never rendered on the UI's origin: its scripts are inline).
"""

from __future__ import annotations

import hashlib
import json

from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, PlainTextResponse, Response
from starlette.routing import BaseRoute, Mount, Route
from starlette.staticfiles import StaticFiles

from aflow.cards.render import STATIC, VENDOR, card_title
from aflow.cards.storage import CardRef, list_cards, read_html
from aflow.exception import AflowNotFound
from aflow.stores.base import NotFound, ObjectStore
from aflow.stores.records import TaskRecord
from aflow.ui.markup import esc, url
from aflow.ui.reader import AttemptView

# Should a browser render the downloaded document anyway, it runs in an opaque origin of its own.
DOCUMENT_CSP = "sandbox allow-scripts; default-src 'none'; script-src 'unsafe-inline'"


def _ref(request: Request) -> CardRef:
    p = request.path_params
    found = CardRef.parse(p["flow"], p["run_id"], p["step"], p["task_id"], p["name"] + ".json")
    if found is None:
        raise AflowNotFound(f"no card named {p['name']}")
    return found


def card_routes(store: ObjectStore) -> list[BaseRoute]:
    where = "/{flow}/{run_id}/{step}/{task_id}/{name}"

    async def data(request: Request) -> Response:
        try:
            raw = await store.get(_ref(request).key("json"))
        except (AflowNotFound, NotFound) as e:
            return PlainTextResponse(str(e), status_code=404)
        return Response(bytes(raw), media_type="application/json", headers={"Cache-Control": "no-cache"})

    async def document(request: Request) -> Response:
        try:
            ref = _ref(request)
            html = await read_html(store, ref)
        except (AflowNotFound, NotFound) as e:
            return PlainTextResponse(str(e), status_code=404)
        filename = f"{ref.flow}-{ref.run_id}-{ref.step}-{ref.task_id}-{ref.name}.html"
        headers = {
            "Content-Security-Policy": DOCUMENT_CSP,
            "Content-Disposition": f'attachment; filename="{filename}"',
        }
        return HTMLResponse(html, headers=headers)

    async def alone(request: Request) -> Response:
        try:
            ref = _ref(request)
        except AflowNotFound as e:
            return PlainTextResponse(str(e), status_code=404)
        parts = (ref.flow, ref.run_id, ref.step, ref.task_id, ref.name)
        task = url("task", ref.flow, ref.run_id, ref.step, ref.task_id)
        return HTMLResponse(
            f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{esc(card_title({"type": ref.type, "id": ref.id, "pathspec": ref.pathspec}))}</title>
<link rel="stylesheet" href="{url("cards", "static", "card.css")}"></head>
<body class="aflow-card-page"><p class="aflow-card-back"><a href="{task}">{esc(ref.pathspec)}</a></p>
<div class="aflow-card" data-key="{esc(ref.name)}" data-src="{url("cards", "data", *parts)}"></div>
<script src="{url("cards", "static", "card.js")}"></script></body></html>"""
        )

    async def listing(request: Request) -> Response:
        p = request.path_params
        refs = await list_cards(store, p["flow"], p["run_id"], p["step"], p["task_id"])
        return JSONResponse([{"name": r.name, "type": r.type, "id": r.id} for r in refs])

    return [
        Route("/cards/data" + where, data),
        Route("/cards/html" + where, document),
        Route("/cards/page" + where, alone),
        Route("/cards/list/{flow}/{run_id}/{step}/{task_id}", listing),
        Mount("/cards/static/vendor", StaticFiles(directory=VENDOR), name="cards-vendor"),
        Mount("/cards/static", StaticFiles(directory=STATIC), name="cards-static"),
    ]


async def _task_cards(
    store: ObjectStore, flow: str, run_id: str, step: str, task_id: str, attempt: int | None,
    record: TaskRecord | None,
) -> list[CardRef]:  # fmt: skip
    refs = await list_cards(store, flow, run_id, step, task_id, attempt)
    if not refs and record is not None and record.cloned_from:  # a resumed run's reused task
        f, r, s, t = record.cloned_from.split("/")
        refs = await list_cards(store, f, r, s, t)
    return refs


async def cards_fragment(
    store: ObjectStore, flow: str, run_id: str, step: str, task_id: str, shown: AttemptView | None
) -> str:
    """The task page's cards section (for the attempt shown): empty but for the renderer when the
    task has no cards."""
    attempt, record = (shown.attempt, shown.record) if shown else (None, None)
    assets = (
        f'<link rel="stylesheet" href="{url("cards", "static", "card.css")}">'
        f'<script src="{url("cards", "static", "card.js")}" defer></script>'
    )
    refs = await _task_cards(store, flow, run_id, step, task_id, attempt, record)
    if not refs:
        return assets
    items = []
    for ref in refs:
        try:
            raw = bytes(await store.get(ref.key("json")))
        except NotFound:
            continue
        digest = hashlib.blake2s(raw, digest_size=6).hexdigest()
        try:
            final = bool(json.loads(raw).get("final"))
        except ValueError:
            final = False
        parts = (ref.flow, ref.run_id, ref.step, ref.task_id, ref.name)
        title = ref.type + (f" · {ref.id}" if ref.id else "")
        ended = record is not None and not final  # the task failed after a refresh()
        state = (
            ""
            if final
            else ' <span class="badge failed">as last refreshed: the task did not succeed</span>'
            if ended
            else ' <span class="badge running">updating</span>'
        )
        items.append(
            f'<div class="aflow-cards-item" data-card="{esc(ref.name)}">'
            f"<h3>{esc(title)}{state}</h3>"
            f'<p class="aflow-cards-links"><a href="{url("cards", "page", *parts)}">open alone</a> · '
            f'<a href="{url("cards", "html", *parts)}" download>download the HTML file</a></p>'
            f'<div class="aflow-card" data-key="{esc(ref.name)}"{" data-ended" if ended else ""} '
            f'data-src="{url("cards", "data", *parts, v=digest)}"></div></div>'
        )
    return (
        f'{assets}<h2>Cards <span class="muted">{len(items)}</span></h2>'
        f'<div class="aflow-cards-list">{"".join(items)}</div>'
    )
