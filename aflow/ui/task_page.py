"""The task page as HTML fragments: its head (state, times, where it runs or ran, its foreach
item), its error, its output and its artifacts; an attempt still running is described from its
start marker. Functions here take what `reader` read and return strings; they read nothing."""

from __future__ import annotations

from aflow.stores.records import TaskRecord, TaskStart
from aflow.ui.logs import LogChoice, log_section
from aflow.ui.markup import badge, esc, size, span, url, when
from aflow.ui.preview import Preview
from aflow.ui.reader import AttemptView, TaskView, task_status

Fragments = dict[str, str]


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


def chosen_attempt(view: TaskView, wanted: int | None) -> AttemptView | None:
    for a in view.attempts:
        if a.attempt == wanted:
            return a
    return view.latest
