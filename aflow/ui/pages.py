"""The three pages as HTML: the runs list, a run (DAG, timeline, tasks) and a task (logs, artifacts).

Each page is a set of named fragments, each the inside of one `<div id=...>`: the page is the shell
around all of them, and the live stream re-sends a fragment whenever its HTML changes, so a page
renders through one code path whether it is loaded or kept up to date. Functions here take what
`reader` read and return strings; they read nothing themselves.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from aflow.client.core import run_tags
from aflow.stores.records import TaskRecord, TaskStart
from aflow.ui import dag, gantt
from aflow.ui.finding import STATUSES, RunQuery
from aflow.ui.logs import LogChoice, log_section
from aflow.ui.markup import badge, clock, esc, size, span, url, when
from aflow.ui.preview import Preview
from aflow.ui.progress import StepProgress, running_since
from aflow.ui.reader import AttemptView, RunSnapshot, RunsPage, TaskState, TaskView, task_status

Fragments = dict[str, str]
TASKS_PER_PAGE = 50


# -- runs -----------------------------------------------------------------------------------------


SORTABLE = (
    ("Flow", "flow"),
    ("Run", "run"),
    ("Status", "status"),
    ("Started", "started"),
    ("Duration", "duration"),
    ("Tasks done", "done"),
    ("Failed", "failed"),
    ("Stopped", "stopped"),
    ("Tags", ""),
)


def runs_fragments(
    page: RunsPage, flow: str | None, per_page: int, now: float, query: RunQuery | None = None
) -> Fragments:
    query = query or RunQuery()
    keep = query.link()
    total_all = sum(n for _, n in page.flows)
    chips = [_chip("All flows", total_all, url("", **keep), flow is None)]
    chips += [_chip(name, n, url("", flow=name, **keep), name == flow) for name, n in page.flows]
    if flow:
        chips.append(f'<a class="chip toggle" href="{esc(url("grid", flow))}">history grid</a>')
    flows = f'<nav class="chips" aria-label="flows">{"".join(chips)}</nav>' + _filters(flow, query)
    if not page.rows:
        if query.filtering:
            empty = f'No run matches these filters. <a href="{esc(url("", flow=flow))}">Clear them</a>.'
        elif flow:
            empty = f"No runs of {esc(flow)} in this store."
        else:
            empty = (
                "No runs in this store yet: run a flow (<code>aflow run flow.py</code>) "
                "and it appears here."
            )
        return {"flows": flows, "runs": f'<p class="empty">{empty}</p>'}
    head = "".join(_sort_header(text, column, flow, query) for text, column in SORTABLE)
    rows = []
    for r in page.rows:
        rec = r.record
        end = rec.finished_at or (rec.heartbeat_at if r.status == "dead" else now)
        tags = " ".join(f'<span class="tag">{esc(t)}</span>' for t in sorted(run_tags(rec)))
        failed = f'<span class="bad">{rec.tasks_failed:,}</span>' if rec.tasks_failed else "0"
        rows.append(
            f'<tr class="run {esc(r.status)}" data-run="{esc(r.flow)}/{esc(r.run_id)}">'
            f'<td><a href="{url("", flow=r.flow)}">{esc(r.flow)}</a></td>'
            f'<td class="mono"><a href="{url("run", r.flow, r.run_id)}">{esc(r.run_id)}</a></td>'
            f"<td>{badge(r.status)}</td><td>{when(rec.started_at)}</td>"
            f'<td class="num">{esc(span(end - rec.started_at))}</td>'
            f'<td class="num">{rec.tasks_done:,}</td><td class="num">{failed}</td>'
            f'<td class="num">{rec.tasks_stopped:,}</td><td>{tags}</td></tr>'
        )
    first = (page.page - 1) * per_page + 1
    pager = _pager(
        page.page, page.pages, lambda n: url("", flow=flow, page=n if n > 1 else None, **keep)
    )
    count = (
        _plural(page.total, "run")
        if page.pages == 1
        else f"runs {first:,}\N{EN DASH}{first + len(rows) - 1:,} of {page.total:,}"
    )
    order = "newest first"
    if query.sort:
        label = next(t for t, c in SORTABLE if c == query.sort.lstrip("-"))
        order = f"by {label.lower()}, {'descending' if query.sort.startswith('-') else 'ascending'}"
    table = (
        f'<div class="bar-line"><span class="muted">{count}, {order}</span>{pager}</div>'
        f'<div class="table-box"><table class="runs"><thead><tr>{head}</tr></thead>'
        f"<tbody>{''.join(rows)}</tbody></table></div>"
    )
    return {"flows": flows, "runs": table}


def _sort_header(text: str, column: str, flow: str | None, query: RunQuery) -> str:
    if not column:
        return f"<th>{text}</th>"
    href = url("", flow=flow, **query.link(sort=query.sorted_by(column)))
    arrow, aria = "", "none"
    if query.sort.lstrip("-") == column:
        down = query.sort.startswith("-")
        arrow, aria = (" ▼", "descending") if down else (" ▲", "ascending")
    return (
        f'<th aria-sort="{aria}"><a class="sort" data-sort="{column}" href="{esc(href)}">'
        f"{text}{arrow}</a></th>"
    )


def _filters(flow: str | None, query: RunQuery) -> str:
    """The filter form: a GET to the runs page, so the filters are in the URL."""
    options = "".join(
        f'<option value="{s}"{" selected" if s == query.status else ""}>{s}</option>'
        for s in ("", *STATUSES)
    ).replace('<option value="">', '<option value="">any status')
    hidden = "".join(
        f'<input type="hidden" name="{k}" value="{esc(v)}">'
        for k, v in (("flow", flow or ""), ("sort", query.sort))
        if v
    )

    def field(name: str, label: str, kind: str = "text", hint: str = "") -> str:
        value = esc(getattr(query, name))
        return (
            f'<label>{label}<input type="{kind}" name="{name}" value="{value}" '
            f'placeholder="{esc(hint)}"></label>'
        )

    clear = ""
    if query.filtering:
        clear = f'<a class="clear" href="{esc(url("", flow=flow, sort=query.sort))}">clear</a>'
    return (
        f'<form class="filters" method="get" action="/" role="search">{hidden}'
        f'<label>status<select name="status">{options}</select></label>'
        + field("tag", "tag", hint="tag or user:name")
        + field("user", "user")
        + field("since", "from", "date")
        + field("until", "to", "date")
        + field("param", "parameter", hint="name=value")
        + f'<button type="submit">filter</button>{clear}</form>'
    )


def _plural(n: int, word: str) -> str:
    return f"{n:,} {word}" + ("" if n == 1 else "s")


def _chip(text: str, n: int, href: str, on: bool) -> str:
    return f'<a class="chip{" on" if on else ""}" href="{esc(href)}">{esc(text)} <b>{n:,}</b></a>'


def _pager(
    page: int, pages: int, link: Callable[[int], str], words: tuple[str, str] = ("← newer", "older →")
) -> str:
    if pages <= 1:
        return ""
    back, on = words
    prev = (
        f'<a href="{esc(link(page - 1))}">{back}</a>' if page > 1 else f'<span class="off">{back}</span>'
    )
    nxt = (
        f'<a href="{esc(link(page + 1))}">{on}</a>' if page < pages else f'<span class="off">{on}</span>'
    )
    return f'<span class="pager">{prev}<span>page {page:,} of {pages:,}</span>{nxt}</span>'


# -- run ------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class TaskFilter:
    step: str | None = None
    failed: bool = False
    page: int = 1
    running: bool = False  # only running tasks, the longest running first: stragglers on top


def run_fragments(
    snap: RunSnapshot, progress: dict[str, StepProgress], chosen: TaskFilter, now: float
) -> Fragments:
    steps = list(progress) or list(snap.steps)
    link_step = url("run", snap.flow, snap.run_id) + "?step={step}#tasks"
    link_task = url("task", snap.flow, snap.run_id) + "/{step}/{task}"
    return {
        "run-head": _run_head(snap, progress, now),
        "run-dag": '<h2>Steps</h2><div class="scroll-x">'
        + dag.draw(snap.record.graph.get("steps", {}), progress, link_step)
        + "</div>",
        "run-gantt": '<h2>Timeline</h2><div class="scroll-x">'
        + gantt.draw(snap, steps, link_task, now, running_since(snap, progress))
        + "</div>",
        "run-tasks": '<h2 id="tasks">Tasks</h2>' + _task_table(snap, progress, chosen, now),
    }


def _run_head(snap: RunSnapshot, progress: dict[str, StepProgress], now: float) -> str:
    rec = snap.record
    end = snap.end(now)
    done = sum(p.done for p in progress.values())
    failed = sum(p.failed for p in progress.values())
    stopped = sum(p.stopped for p in progress.values())
    caught = sum(p.caught for p in progress.values())
    counts = [f"{done:,} done"]
    if caught:
        counts.append(f'<span class="caught">{caught:,} of them failed and caught (@catch)</span>')
    if failed:
        counts.append(f'<span class="bad">{failed:,} failed</span>')
    if stopped:
        counts.append(f'<span class="stopped">{stopped:,} stopped by the engine</span>')
    begun = [t.started for ts in snap.steps.values() for t in ts if t.status == "running"]
    if begun:
        href = url("run", snap.flow, snap.run_id, running=1) + "#tasks"
        oldest = min((b for b in begun if b is not None), default=None)
        longest = f" (the longest for {esc(span(now - oldest))})" if oldest is not None else ""
        counts.append(f'<a class="running" href="{esc(href)}">{len(begun):,} running</a>{longest}')
    facts = [
        ("Started", when(rec.started_at)),
        ("Duration", esc(span(end - rec.started_at)) + ("…" if snap.live else "")),
        ("Tasks", ", ".join(counts)),
        ("User", esc(rec.user or "-")),
    ]
    facts.append(
        ("History", f'<a href="{url("grid", rec.flow)}">{esc(rec.flow)}\'s last runs, step by step</a>')
    )
    if rec.origin_run_id:
        facts.append(
            (
                "Resumed from",
                f'<a href="{url("run", rec.flow, rec.origin_run_id)}">{esc(rec.origin_run_id)}</a>'
                f' · <a href="{url("compare", rec.flow, rec.origin_run_id, rec.run_id)}">compare</a>',
            )
        )
    tags = sorted(run_tags(rec))
    if tags:
        facts.append(("Tags", " ".join(f'<span class="tag">{esc(t)}</span>' for t in tags)))
    if rec.params:
        facts.append(
            (
                "Parameters",
                " ".join(
                    f'<span class="param"><b>{esc(k)}</b>={esc(v)}</span>' for k, v in rec.params.items()
                ),
            )
        )
    if snap.status == "dead":
        facts.append(("Heartbeat", f"last at {when(rec.heartbeat_at)}: its scheduler is gone"))
    grid = "".join(f"<dt>{k}</dt><dd>{v}</dd>" for k, v in facts)
    out = (
        f'<h1><span class="flow">{esc(rec.flow)}</span> <span class="mono">{esc(rec.run_id)}</span> '
        f'{badge(snap.status)}</h1><dl class="facts">{grid}</dl>'
    )
    if rec.error:
        out += _run_error(snap)
    return out


def _run_error(snap: RunSnapshot) -> str:
    error = snap.record.error or {}
    where = ""
    task = error.get("task")
    if task and task.count("/") == 3:
        _flow, run_id, step, task_id = task.split("/")
        href = url("task", snap.flow, run_id, step, task_id)
        where = f' in <a href="{href}">{esc(step)}/{esc(task_id)}</a>'
    trace = error.get("traceback") or ""
    body = f'<pre class="trace">{esc(trace)}</pre>' if trace.strip() else ""
    return (
        f'<section class="error" id="run-error"><h2>The run failed{where}</h2>'
        f'<p class="message">{esc(error.get("message", ""))}</p>{body}</section>'
    )


def _task_table(
    snap: RunSnapshot, progress: dict[str, StepProgress], chosen: TaskFilter, now: float
) -> str:
    base = url("run", snap.flow, snap.run_id)
    chips = [
        _filter_chip("All steps", sum(len(v) for v in snap.steps.values()), base, chosen.step is None)
    ]
    for name, p in progress.items():
        n = len(snap.steps.get(name, []))
        href = url("run", snap.flow, snap.run_id, step=name)
        chips.append(_filter_chip(name, n, href, chosen.step == name, p.state))
    failed_on = url("run", snap.flow, snap.run_id, step=chosen.step, failed=None if chosen.failed else 1)
    chips.append(
        f'<a class="chip toggle{" on" if chosen.failed else ""}" href="{esc(failed_on)}#tasks">'
        "only failed</a>"
    )
    tasks: list[TaskState] = [
        t
        for name in (progress or snap.steps)
        if chosen.step in (None, name)
        for t in snap.steps.get(name, [])
        if not chosen.failed or t.status in ("failed", "retrying")
    ]
    running = sum(t.status == "running" for t in tasks)
    if running or chosen.running:
        on = url("run", snap.flow, snap.run_id, step=chosen.step, running=None if chosen.running else 1)
        chips.append(
            f'<a class="chip toggle{" on" if chosen.running else ""}" href="{esc(on)}#tasks" '
            f'title="the longest running first">running <b>{running:,}</b></a>'
        )
    if chosen.running:
        tasks = sorted(
            (t for t in tasks if t.status == "running"),
            key=lambda t: t.started if t.started is not None else float("inf"),
        )
    pages = max(1, -(-len(tasks) // TASKS_PER_PAGE))
    page = min(max(chosen.page, 1), pages)
    shown = tasks[(page - 1) * TASKS_PER_PAGE : page * TASKS_PER_PAGE]

    def page_link(n: int) -> str:
        return (
            url(
                "run",
                snap.flow,
                snap.run_id,
                step=chosen.step,
                failed=1 if chosen.failed else None,
                running=1 if chosen.running else None,
                page=n if n > 1 else None,
            )
            + "#tasks"
        )

    pager = _pager(page, pages, page_link, ("← previous", "next →"))
    head = "".join(
        f"<th>{h}</th>"
        for h in (
            "Task",
            "Step",
            "Index",
            "Status",
            "Attempts",
            "Started",
            "Duration",
            "Backend",
            "Job id",
        )
    )
    rows = "".join(_task_row(snap, t, now) for t in shown)
    if not shown:
        rows = '<tr><td colspan="9" class="empty">No task here yet.</td></tr>'
    first = (page - 1) * TASKS_PER_PAGE + 1
    count = (
        _plural(len(tasks), "task")
        if pages == 1
        else f"tasks {first:,}\N{EN DASH}{first + len(shown) - 1:,} of {len(tasks):,}"
    )
    return (
        f'<nav class="chips" aria-label="steps">{"".join(chips)}</nav>'
        f'<div class="bar-line"><span class="muted">{count}</span>{pager}</div>'
        f'<div class="table-box"><table class="tasks"><thead><tr>{head}</tr></thead>'
        f"<tbody>{rows}</tbody></table></div>"
    )


def _filter_chip(text: str, n: int, href: str, on: bool, state: str = "") -> str:
    dot = f'<i class="dot {esc(state)}"></i>' if state else ""
    return (
        f'<a class="chip{" on" if on else ""}" href="{esc(href)}#tasks">{dot}{esc(text)} '
        f"<b>{n:,}</b></a>"
    )


def _task_row(snap: RunSnapshot, t: TaskState, now: float) -> str:
    rec = t.record
    href = url("task", snap.flow, snap.run_id, t.step, t.task_id)
    index = t.index
    where = rec or t.start
    if rec:
        started, took = clock(rec.started_at), esc(span(rec.finished_at - rec.started_at))
    elif t.started is not None:
        # No record yet: running (or, in a run that ended, never finished) since its start.
        began = t.started
        end = max(began, snap.end(now))
        started = clock(began)
        took = esc(span(end - began)) + ("…" if t.status == "running" else "")
        if not t.exact:  # an older aflow wrote no start marker: timed from its first output
            took = f'<span title="since its first saved output">≥ {took}</span>'
        elif t.status != "running":
            why = "its run ended (or was last heard from) then; how long it went on is not known"
            took = f'<span title="{why}">≥ {took}</span>'
    else:
        started = took = "-"
    backend = esc(where.backend) if where else "-"
    job = esc(where.job_id) if where and where.job_id else ""
    reused = ' <span class="tag" title="reused from the run this one resumed">reused</span>'
    return (
        f'<tr class="task {t.status}"><td class="mono"><a href="{href}">{esc(t.task_id)}</a></td>'
        f'<td>{esc(t.step)}</td><td class="num">{index}</td><td>{badge(t.status)}'
        f"{reused if rec and rec.cloned_from else ''}</td>"
        f'<td class="num">{t.attempts}</td><td>{started}</td><td class="num">{took}</td>'
        f'<td>{backend}</td><td class="mono">{job}</td></tr>'
    )


# -- task -----------------------------------------------------------------------------------------


def task_fragments(
    view: TaskView,
    attempt: AttemptView | None,
    previews: dict[str, Preview | str],
    choice: LogChoice | None = None,
    asked: str = "",
    now: float = 0.0,
) -> Fragments:
    """`choice` says which log lines to show; `asked` is the attempt the URL names ('' for none);
    `now` times an attempt still running."""
    return {
        "task-head": _task_head(view, attempt, now),
        "task-error": _task_error(attempt),
        "task-logs": _task_logs(view, attempt, choice or LogChoice(), asked),
        "task-artifacts": _task_artifacts(attempt, previews),
    }


def _task_head(view: TaskView, attempt: AttemptView | None, now: float) -> str:
    task = view.task
    status = view.status
    rec = attempt.record if attempt else None
    start = attempt.start if attempt else None
    facts: list[tuple[str, str]] = []
    if rec:
        facts += [
            ("Started", when(rec.started_at)),
            ("Duration", esc(span(rec.finished_at - rec.started_at))),
            *_where(rec),
        ]
        facts += [("Image", f'<span class="mono">{esc(rec.image)}</span>')] if rec.image else []
        facts += (
            [("Environment", f'<span class="mono">{esc(rec.env_key)}</span>')] if rec.env_key else []
        )
        if rec.parents:
            facts.append(("Inputs", _parents(view, rec)))
        if rec.cloned_from:
            _f, run_id, step, task_id = rec.cloned_from.split("/")
            facts.append(
                (
                    "Reused from",
                    f'<a href="{url("task", task.flow, run_id, step, task_id)}">'
                    f"{esc(rec.cloned_from)}</a>",
                )
            )
    elif start is not None and attempt is not None:
        running = status == "running" and attempt is view.latest
        if running:
            took = esc(span(now - start.started_at)) + "… so far"
        else:
            took = "unknown: it left no record (it was stopped, or its run ended first)"
        facts += [("Started", when(start.started_at)), ("Duration", took), *_where(start)]
        if start.host:
            pid = f" (pid {start.pid})" if start.pid else ""
            facts.append(("Host", f'<span class="mono">{esc(start.host)}</span>{pid}'))
    else:
        facts.append(("State", "no record yet: the task is running or was stopped before it ended"))
    facts.append(("Attempts", str(len(view.attempts))))
    grid = "".join(f"<dt>{k}</dt><dd>{v}</dd>" for k, v in facts)
    return (
        f'<h1><span class="flow">{esc(task.step)}</span> <span class="mono">task {esc(task.id)}</span> '
        f'{badge(status)}</h1><p class="pathspec mono">{esc(task.pathspec)}</p>'
        f'<dl class="facts">{grid}</dl>'
    )


def _where(rec: TaskRecord | TaskStart) -> list[tuple[str, str]]:
    """Where an attempt runs or ran, and which foreach item it is: its record's or its marker's."""
    facts = [("Backend", esc(rec.backend))]
    if rec.job_id:
        facts.append(("Remote job", f'<span class="mono">{esc(rec.job_id)}</span>'))
    if rec.foreach_stack:
        where = ", ".join(f"{esc(f[0])}[{int(f[1])} of {int(f[2]):,}]" for f in rec.foreach_stack)
        facts.append(("Foreach", where))
    return facts


def _parents(view: TaskView, rec: TaskRecord) -> str:
    links = []
    for parent in rec.parents[:8]:
        bits = parent.split("/")
        if len(bits) >= 2:
            href = url("task", view.task.flow, view.task.run_id, bits[0], bits[1])
            links.append(f'<a class="mono" href="{href}">{esc(bits[0])}/{esc(bits[1])}</a>')
    more = f" and {len(rec.parents) - 8:,} more" if len(rec.parents) > 8 else ""
    if rec.parents_manifest and not rec.parents:
        return "many (a manifest in the store)"
    return ", ".join(links) + more


def _task_error(attempt: AttemptView | None) -> str:
    rec = attempt.record if attempt else None
    if rec is None or not rec.error:
        return ""
    e = rec.error
    head = f"{e.get('type', '')}: {e.get('message', '')}" if e.get("type") else e.get("message", "")
    trace = e.get("traceback", "")
    if rec.ok:
        title, kind = f"Attempt {rec.attempt} failed; @catch recorded it and the flow went on", "caught"
    elif rec.stopped:
        title, kind = (
            f"Attempt {rec.attempt} was stopped by the engine (not a failure of its own)",
            "stopped",
        )
    else:
        title, kind = f"Attempt {rec.attempt} failed", "error"
    return (
        f'<section class="error {kind}"><h2>{title}</h2>'
        f'<p class="message">{esc(head)}</p>'
        + (f'<pre class="trace">{esc(trace)}</pre>' if trace.strip() else "")
        + "</section>"
    )


def _task_logs(view: TaskView, attempt: AttemptView | None, choice: LogChoice, asked: str) -> str:
    tabs = ""
    if len(view.attempts) > 1:
        tabs = (
            '<nav class="chips" aria-label="attempts">'
            + "".join(
                f'<a class="chip{" on" if attempt and a.attempt == attempt.attempt else ""}" '
                f'href="?attempt={a.attempt}">attempt {a.attempt} '
                f"{badge(_attempt_status(a, view.run_status == 'running'))}</a>"
                for a in view.attempts
            )
            + "</nav>"
        )
    return log_section(view, attempt, choice, tabs, asked)


def _attempt_status(a: AttemptView, run_live: bool) -> str:
    return task_status(a.record, True, run_live)


def _task_artifacts(attempt: AttemptView | None, previews: dict[str, Preview | str]) -> str:
    rec = attempt.record if attempt else None
    if rec is None:
        return '<h2>Artifacts</h2><p class="muted">Artifacts are listed once the task has ended.</p>'
    names = sorted(rec.artifacts)
    if not names:
        return '<h2>Artifacts</h2><p class="muted">None.</p>'
    rows = []
    for name in names:
        ref = rec.artifacts[name]
        n = int(ref["s"]) if "k" in ref else len(ref["v"])
        shown = previews.get(name)
        if isinstance(shown, Preview):
            kind, body = esc(shown.type), f'<pre class="preview">{esc(shown.text)}</pre>'
        else:
            kind, body = "", f'<span class="muted">{shown or ""}</span>'
        rows.append(
            f'<tr data-artifact="{esc(name)}"><td class="mono name">{esc(name)}</td>'
            f'<td class="mono">{kind}</td><td class="num">{size(n)}</td><td>{body}</td></tr>'
        )
    return (
        f'<h2>Artifacts <span class="muted">{len(names)}</span></h2>'
        '<div class="table-box"><table class="artifacts"><thead><tr><th>Name</th><th>Type</th>'
        f"<th>Size</th><th>Preview</th></tr></thead><tbody>{''.join(rows)}</tbody></table></div>"
    )


def not_found(message: str) -> str:
    return f'<section class="error"><h2>Not found</h2><p class="message">{esc(message)}</p></section>'


def chosen_attempt(view: TaskView, wanted: int | None) -> AttemptView | None:
    for a in view.attempts:
        if a.attempt == wanted:
            return a
    return view.latest
