"""The Starlette app behind `aflow ui`: three pages, their live streams, raw logs and static files.

A page is a view: an async function from the request to its title, breadcrumbs and fragments. GET
`/...` renders the view once, inside the page shell; GET `/live/...` (server-sent events) renders it
again every `poll` seconds (less often while nothing changes: `backoff`; the page closes its stream
while its tab is hidden) and sends the fragments whose HTML changed, until the view says nothing
more will change (a finished run, a task that ended for good). The page tells the stream which
versions it has (`v=`), so a fresh page is not sent again what it already shows. The store is
polled, so runs started by any process, anywhere the store is, show up and progress. Nothing here
writes to the store: it is wrapped read-only.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import threading
import time
from collections import OrderedDict
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path

import anyio
import anyio.to_thread
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import HTMLResponse, PlainTextResponse, Response, StreamingResponse
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles

from aflow.client.core import AsyncDataArtifact, AsyncFlow
from aflow.exception import AflowNotFound, DamagedData
from aflow.stores.artifacts import deserialize
from aflow.stores.base import Buffer, ObjectStore
from aflow.stores.transfer import gather
from aflow.ui import history, pages
from aflow.ui.cards import card_routes, cards_fragment
from aflow.ui.finding import RunQuery
from aflow.ui.guard import Guard, host_names
from aflow.ui.logs import LogChoice, raw_text, repair
from aflow.ui.markup import esc, page, size, url
from aflow.ui.preview import PREVIEW_LIMIT, Preview, describe
from aflow.ui.progress import step_progress
from aflow.ui.reader import ReadOnlyStore, RunReaders, RunSnapshot, RunsReader, artifact_blob, read_task

STATIC = Path(__file__).parent / "static"
RUNS_PER_PAGE = 50
KEEPALIVE_SECONDS = 15.0
MAX_BACKOFF = 10.0
log = logging.getLogger("aflow.ui")


@dataclass
class Rendered:
    title: str
    crumbs: list[tuple[str, str | None]]
    fragments: dict[str, str]
    live: bool  # the view may still change: keep streaming
    status_code: int = 200


View = Callable[[Request], Awaitable[Rendered]]


@dataclass
class UIState:
    store: ObjectStore
    runs: RunsReader
    readers: RunReaders
    poll: float
    previews: OrderedDict[str, Preview] = field(default_factory=OrderedDict)


def create_app(store: ObjectStore, poll: float = 1.0, hosts: frozenset[str] | None = None) -> Starlette:
    """The app over `store` (wrapped read-only); `poll` is how often live pages re-read it; `hosts`
    the Host names it answers (default: loopback's, see `guard`)."""
    readonly = ReadOnlyStore(store)
    state = UIState(readonly, RunsReader(readonly), RunReaders(readonly), poll)

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        try:
            yield
        finally:
            with contextlib.suppress(Exception):
                await readonly.aclose()

    def both(path: str, view: View) -> list[Route]:
        async def once(request: Request) -> Response:
            return await _page(view, request)

        async def stream(request: Request) -> Response:
            return _stream(view, request, state.poll)

        return [Route(path, once), Route("/live" + path, stream)]

    async def raw(request: Request) -> Response:
        return await _raw_log(state, request)

    routes = [
        *both("/", lambda r: _runs_view(state, r)),
        *both("/run/{flow}/{run_id}", lambda r: _run_view(state, r)),
        *both("/task/{flow}/{run_id}/{step}/{task_id}", lambda r: _task_view(state, r)),
        *both("/grid/{flow}", lambda r: _grid_view(state, r)),
        *both("/compare/{flow}/{a}/{b}", lambda r: _compare_view(state, r)),
        Route("/raw/{flow}/{run_id}/{step}/{task_id}", raw),
        *card_routes(readonly),
        Mount("/static", StaticFiles(directory=STATIC), name="static"),
    ]
    guard = Middleware(Guard, hosts=hosts if hosts is not None else host_names())
    app = Starlette(routes=routes, lifespan=lifespan, middleware=[guard])
    app.state.ui = state
    return app


# -- pages and streams ----------------------------------------------------------------------------


def _digest(html: str) -> str:
    return hashlib.blake2s(html.encode(), digest_size=6).hexdigest()


async def _page(view: View, request: Request) -> Response:
    try:
        shown = await view(request)
    except (AflowNotFound, DamagedData) as e:
        # A damaged record is named (file, what to do) like a missing one, not a server error.
        what = "damaged" if isinstance(e, DamagedData) else "not found"
        shown = Rendered(
            what,
            [(what, None)],
            {"missing": pages.not_found(str(e))},
            live=False,
            status_code=404,
        )
    body = "".join(
        f'<div id="{esc(k)}" class="fragment" data-v="{_digest(v)}">{v}</div>'
        for k, v in shown.fragments.items()
    )
    return HTMLResponse(page(shown.title, shown.crumbs, body, shown.live), status_code=shown.status_code)


def _stream(view: View, request: Request, poll: float) -> Response:
    have = dict(p.split(":", 1) for p in request.query_params.get("v", "").split(",") if ":" in p)

    async def events() -> AsyncIterator[str]:
        quiet = 0.0
        unchanged = 0  # reads in a row that changed nothing
        while True:
            try:
                shown = await view(request)
            except AflowNotFound:
                yield "event: end\ndata: {}\n\n"
                return
            except Exception:
                # A store hiccup (a cloud read timing out) should cost one update, not the stream.
                log.warning("aflow ui: reading %s failed; retrying", request.url.path, exc_info=True)
                await anyio.sleep(poll)
                continue
            changed = {}
            for key, html in shown.fragments.items():
                v = _digest(html)
                if have.get(key) != v:
                    changed[key] = {"html": html, "v": v}
                    have[key] = v
            if changed:
                quiet = 0.0
                yield f"event: fragments\ndata: {json.dumps(changed)}\n\n"
            elif quiet >= KEEPALIVE_SECONDS:
                quiet = 0.0
                yield ": still here\n\n"  # a comment: keeps proxies from closing an idle stream
            if not shown.live:
                yield "event: end\ndata: {}\n\n"
                return
            unchanged = 0 if changed else unchanged + 1
            wait = backoff(poll, unchanged)
            await anyio.sleep(wait)
            quiet += wait

    headers = {"Cache-Control": "no-cache", "X-Accel-Buffering": "no"}
    return StreamingResponse(events(), media_type="text/event-stream", headers=headers)


def backoff(poll: float, unchanged: int) -> float:
    """Seconds until the next read of a live page: `poll` while things change, then longer with
    each read that changed nothing, up to MAX_BACKOFF polls (a forgotten tab on a quiet store costs
    a read every ~10 s, not every second; its first change resets it)."""
    return poll * min(1.5 ** max(unchanged - 2, 0), MAX_BACKOFF)


def _int(request: Request, name: str, default: int) -> int:
    try:
        return int(request.query_params.get(name, default))
    except ValueError:
        return default


# -- the three views ------------------------------------------------------------------------------


async def _runs_view(state: UIState, request: Request) -> Rendered:
    flow = request.query_params.get("flow") or None
    query = RunQuery.parse(request.query_params)
    found = await state.runs.page(flow, _int(request, "page", 1), RUNS_PER_PAGE, query)
    crumbs: list[tuple[str, str | None]] = [("runs", url("") if flow else None)]
    if flow:
        crumbs.append((flow, None))
    return Rendered(
        f"{flow} runs" if flow else "runs",
        crumbs,
        pages.runs_fragments(found, flow, RUNS_PER_PAGE, time.time(), query),
        live=True,  # a new run may start at any time
    )


async def _run_view(state: UIState, request: Request) -> Rendered:
    flow, run_id = request.path_params["flow"], request.path_params["run_id"]
    snap = await state.readers.get(flow, run_id).snapshot()
    progress = step_progress(snap)
    chosen = pages.TaskFilter(
        step=request.query_params.get("step") or None,
        failed=bool(request.query_params.get("failed")),
        running=bool(request.query_params.get("running")),
        page=_int(request, "page", 1),
    )
    return Rendered(
        f"{flow} {run_id}",
        [("runs", url("")), (flow, url("", flow=flow)), (run_id, None)],
        pages.run_fragments(snap, progress, chosen, time.time()),
        live=snap.live or snap.status == "dead",
    )


async def _grid_view(state: UIState, request: Request) -> Rendered:
    flow = request.path_params["flow"]
    ids = await AsyncFlow(flow, store=state.store).run_ids()  # newest first
    if not ids:
        raise AflowNotFound(f"no runs of {flow} in this store")
    n = min(max(_int(request, "n", history.GRID_RUNS), 1), history.MAX_GRID_RUNS)
    chosen = list(reversed(ids[:n]))
    snaps = await gather([partial(_snapshot_or_none, state, flow, i) for i in chosen], limit=8)
    runs = [(s, step_progress(s)) for s in snaps if s is not None]
    return Rendered(
        f"{flow} history",
        [("runs", url("")), (flow, url("", flow=flow)), ("history", None)],
        history.grid_fragments(flow, runs, len(ids)),
        live=any(s.live for s, _ in runs),
    )


async def _snapshot_or_none(state: UIState, flow: str, run_id: str) -> RunSnapshot | None:
    try:
        return await state.readers.get(flow, run_id).snapshot()
    except AflowNotFound:
        return None  # a run being created: its folder exists before its record


async def _compare_view(state: UIState, request: Request) -> Rendered:
    p = request.path_params
    flow = p["flow"]
    a, b = await gather([state.readers.get(flow, i).snapshot for i in (p["a"], p["b"])])
    return Rendered(
        f"{flow} {a.run_id} vs {b.run_id}",
        [("runs", url("")), (flow, url("", flow=flow)), (f"{a.run_id} vs {b.run_id}", None)],
        history.compare_fragments(a, b),
        live=a.live or b.live,
    )


async def _task_view(state: UIState, request: Request) -> Rendered:
    p = request.path_params
    flow, run_id, step, task_id = p["flow"], p["run_id"], p["step"], p["task_id"]
    view = await read_task(state.store, flow, run_id, step, task_id)
    wanted = request.query_params.get("attempt")
    attempt = pages.chosen_attempt(view, int(wanted) if wanted and wanted.isdigit() else None)
    previews: dict[str, Preview | str] = {}
    if attempt is not None and attempt.record is not None:
        load = request.query_params.get("load")
        refs = attempt.record.artifacts
        results = await gather(
            [
                partial(_preview, state, AsyncDataArtifact(view.task, n, refs[n]), n == load)
                for n in refs
            ],
            limit=4,
        )
        previews = dict(zip(refs, results, strict=True))
    return Rendered(
        f"{step}/{task_id} · {flow} {run_id}",
        [
            ("runs", url("")),
            (flow, url("", flow=flow)),
            (run_id, url("run", flow, run_id)),
            (step, url("run", flow, run_id, step=step)),
            (task_id, None),
        ],
        {
            **pages.task_fragments(
                view,
                attempt,
                previews,
                LogChoice(request.query_params.get("q", "").strip()[:200], _all_lines(request)),
                wanted if wanted and wanted.isdigit() else "",
                time.time(),
            ),
            "cards": await cards_fragment(state.store, flow, run_id, step, task_id, attempt),
        },
        live=not view.final,
    )


async def _preview(state: UIState, artifact: AsyncDataArtifact, asked: bool) -> Preview | str:
    """The artifact's preview, made once per content hash (equal values share one)."""
    key = artifact.sha
    kept = state.previews.get(key)
    if kept is not None:
        return kept
    if artifact.size > PREVIEW_LIMIT and not asked:
        asks = f'<a href="?load={esc(artifact.name)}">load a preview</a>'
        return f"not loaded ({size(artifact.size)}): {asks}"
    try:
        blob = await artifact_blob(artifact)
        made = await anyio.to_thread.run_sync(_describe_blob, blob)
    except Exception as e:
        # Typically a class from the flow's own module, which this process cannot import. Not
        # kept: the next look tries again.
        return f"cannot be loaded here: {esc(type(e).__name__)}: {esc(e)}"
    state.previews[key] = made
    while len(state.previews) > 2048:
        state.previews.popitem(last=False)
    return made


_unpickling = threading.Lock()


def _describe_blob(blob: Buffer) -> Preview:
    # One at a time: unpickling imports modules (numpy, the first time), and two threads importing
    # the same module at once can each see it half-initialised.
    with _unpickling:
        return describe(deserialize(blob))


async def _raw_log(state: UIState, request: Request) -> Response:
    p = request.path_params
    try:
        view = await read_task(state.store, p["flow"], p["run_id"], p["step"], p["task_id"])
    except AflowNotFound as e:
        return PlainTextResponse(str(e), status_code=404)
    wanted = request.query_params.get("attempt")
    attempt = pages.chosen_attempt(view, int(wanted) if wanted and wanted.isdigit() else None)
    stream = request.query_params.get("stream")
    lines = [ln for ln in repair(attempt.log if attempt else []) if stream in (None, ln.stream)]
    headers = {}
    if request.query_params.get("download") and attempt is not None:
        # Names are identifiers and ids (the guard checked): safe in a header as they are.
        name = f"{p['flow']}-{p['run_id']}-{p['step']}-{p['task_id']}-{attempt.attempt}.log"
        headers["Content-Disposition"] = f'attachment; filename="{name}"'
    return PlainTextResponse(raw_text(lines), headers=headers)


def _all_lines(request: Request) -> bool:
    return request.query_params.get("lines") == "all"
