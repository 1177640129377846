"""Looking across runs: a flow's runs x steps history grid, and two runs side by side.

- The grid (as Airflow's grid view): the flow's last N runs as columns, oldest on the left, its steps
  as rows; each cell is the step's state in that run and how long it took (first task start to last
  task end), so a step that began failing or slowing down stands out along its row.
- The comparison: parameters, each step's duration and the artifacts that differ. Artifacts are
  compared by content hash (a blob's digest, or a hash of an inline value), so nothing is loaded.

Functions here take what `reader` read and return HTML fragments; they read nothing themselves.
"""

from __future__ import annotations

import hashlib
import itertools

from aflow.stores.artifacts import ArtifactRef
from aflow.ui.markup import badge, esc, span, url
from aflow.ui.progress import StepProgress
from aflow.ui.reader import RunSnapshot, TaskState

Fragments = dict[str, str]
GRID_RUNS = 15
MAX_GRID_RUNS = 50
MAX_DIFFS = 500


def step_span(tasks: list[TaskState]) -> float | None:
    """How long a step took in a run: its first task's start to its last task's end."""
    records = [t.record for t in tasks if t.record is not None and not t.record.cloned_from]
    if not records:
        return None
    return max(r.finished_at for r in records) - min(r.started_at for r in records)


def grid_fragments(
    flow: str, runs: list[tuple[RunSnapshot, dict[str, StepProgress]]], total: int
) -> Fragments:
    """`runs` oldest first, each with its steps' progress."""
    if not runs:
        return {"grid": f'<p class="empty">No runs of {esc(flow)} in this store.</p>'}
    steps: list[str] = []
    for snap, _ in reversed(runs):  # the newest graph's order first, then steps only older runs had
        for name in snap.record.graph.get("steps", {}):
            if name not in steps:
                steps.append(name)
    head = "".join(
        f'<th class="run-col"><a class="mono" href="{url("run", flow, s.run_id)}" '
        f'title="{esc(s.run_id)}">…{esc(s.run_id[-6:])}</a><br>{badge(s.status)}</th>'
        for s, _ in runs
    )
    rows = []
    for step in steps:
        cells = []
        for snap, progress in runs:
            p = progress.get(step)
            if p is None:
                cells.append('<td class="cell absent" title="not in this run\'s graph"></td>')
                continue
            took = step_span(snap.steps.get(step, []))
            text = esc(span(took)) if took is not None else ""
            tip = f"{step} in {snap.run_id}: {p.state}" + (f", {span(took)}" if took is not None else "")
            href = url("run", flow, snap.run_id, step=step) + "#tasks"
            cells.append(
                f'<td class="cell {esc(p.state)}" data-step="{esc(step)}" data-run="{esc(snap.run_id)}">'
                f'<a href="{esc(href)}" title="{esc(tip)}">{text or "&nbsp;"}</a></td>'
            )
        rows.append(f'<tr><th class="step-row">{esc(step)}</th>{"".join(cells)}</tr>')
    compare = ['<th class="step-row muted">compare</th><td></td>']
    for (before, _), (after, _) in itertools.pairwise(runs):
        href = url("compare", flow, before.run_id, after.run_id)
        compare.append(
            f'<td class="cell-link"><a href="{href}" title="with the run on its left">vs ←</a></td>'
        )
    rows.append(f"<tr>{''.join(compare)}</tr>")
    count = f"the last {len(runs):,} of {total:,} runs, oldest on the left"
    return {
        "grid": f'<h1><span class="flow">{esc(flow)}</span> history</h1>'
        f'<p class="muted">{count}; each cell is a step\'s state and duration in that run.</p>'
        f'<div class="table-box grid-box"><table class="grid"><thead><tr><th></th>{head}</tr>'
        f"</thead><tbody>{''.join(rows)}</tbody></table></div>"
    }


def _digest(ref: ArtifactRef) -> str:
    """An artifact's content hash: its blob's digest, or a hash of its inline bytes."""
    if "k" in ref:
        return ref["k"]
    return hashlib.sha256(bytes(ref.get("v", b""))).hexdigest()


def _size(ref: ArtifactRef) -> int:
    return int(ref.get("s", 0)) if "k" in ref else len(ref.get("v", b""))


def _artifacts(snap: RunSnapshot) -> dict[tuple[str, str, str], ArtifactRef]:
    """(step, foreach index, artifact) -> its ref, for every task that ended."""
    out = {}
    for step, tasks in snap.steps.items():
        for t in tasks:
            if t.record is None:
                continue
            for name, ref in t.record.artifacts.items():
                if not name.startswith("_"):
                    out[(step, t.index, name)] = ref
    return out


def compare_fragments(a: RunSnapshot, b: RunSnapshot) -> Fragments:
    flow = a.flow
    names = list(dict.fromkeys([*a.record.params, *b.record.params]))
    params = (
        "".join(
            f'<tr class="{"differs" if a.record.params.get(n) != b.record.params.get(n) else "same"}">'
            f'<th class="mono">{esc(n)}</th><td class="mono">{esc(a.record.params.get(n, "-"))}</td>'
            f'<td class="mono">{esc(b.record.params.get(n, "-"))}</td></tr>'
            for n in names
        )
        or '<tr><td colspan="3" class="muted">No parameters.</td></tr>'
    )
    steps = list(dict.fromkeys([*a.record.graph.get("steps", {}), *b.record.graph.get("steps", {})]))
    durations = []
    for step in steps:
        ta, tb = step_span(a.steps.get(step, [])), step_span(b.steps.get(step, []))
        delta = ""
        if ta is not None and tb is not None:
            change = tb - ta
            ratio = f" ({tb / ta:.1f}\N{MULTIPLICATION SIGN})" if ta > 0 else ""
            delta = ("+" if change >= 0 else "\N{MINUS SIGN}") + span(abs(change)) + ratio
        durations.append(
            f'<tr data-step="{esc(step)}"><th>{esc(step)}</th>'
            f'<td class="num">{esc(span(ta)) if ta is not None else "-"}</td>'
            f'<td class="num">{esc(span(tb)) if tb is not None else "-"}</td>'
            f'<td class="num">{esc(delta)}</td></tr>'
        )
    arts_a, arts_b = _artifacts(a), _artifacts(b)
    diffs = []
    for key in sorted(set(arts_a) | set(arts_b)):
        ra, rb = arts_a.get(key), arts_b.get(key)
        if ra is not None and rb is not None and _digest(ra) == _digest(rb):
            continue
        step, index, name = key
        where = f"{step}[{index}]" if index else step

        def cell(ref: ArtifactRef | None) -> str:
            if ref is None:
                return '<td class="muted">absent</td>'
            digest = _digest(ref)
            return f'<td class="mono" title="{esc(digest)}">{esc(digest[:10])} · {_size(ref):,} B</td>'

        diffs.append(
            f'<tr data-artifact="{esc(name)}"><td class="mono">{esc(where)}</td>'
            f'<th class="mono">{esc(name)}</th>{cell(ra)}{cell(rb)}</tr>'
        )
    shown = diffs[:MAX_DIFFS]
    more = f'<p class="muted">and {len(diffs) - MAX_DIFFS:,} more.</p>' if len(diffs) > MAX_DIFFS else ""
    artifacts = (
        '<div class="table-box"><table class="compare"><thead><tr><th>Step</th><th>Artifact</th>'
        f"<th>{esc(a.run_id)}</th><th>{esc(b.run_id)}</th></tr></thead>"
        f"<tbody>{''.join(shown)}</tbody></table></div>{more}"
        if diffs
        else '<p class="muted">Every artifact has the same content in both runs.</p>'
    )

    def title(s: RunSnapshot) -> str:
        return (
            f'<a class="mono" href="{url("run", flow, s.run_id)}">{esc(s.run_id)}</a> {badge(s.status)}'
        )

    return {
        "compare": f'<h1><span class="flow">{esc(flow)}</span> two runs</h1>'
        f'<h2>Parameters</h2><div class="table-box"><table class="compare params"><thead><tr><th></th>'
        f"<th>{title(a)}</th><th>{title(b)}</th></tr></thead><tbody>{params}</tbody></table></div>"
        '<h2>Step durations</h2><div class="table-box"><table class="compare durations"><thead><tr>'
        f"<th>Step</th><th>{esc(a.run_id)}</th><th>{esc(b.run_id)}</th><th>Change</th></tr></thead>"
        f"<tbody>{''.join(durations)}</tbody></table></div>"
        f'<h2>Artifacts that differ <span class="muted">{len(diffs):,}</span></h2>{artifacts}'
    }
