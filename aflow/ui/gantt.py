"""The run's timeline as an SVG Gantt chart: one band per step, one bar per task attempt.

Bars are packed into lanes (a task goes in the first lane free at its start), so a 1,000-way foreach
run by 16 workers is 16 thin lanes, not 1,000 rows; every attempt of a retried task is drawn, in
its task's lane. A task still running is a bar growing from its start (its start marker, or from an
older aflow its first saved output) to now, so a straggler stands out before it ends; a task
reused from the run this one resumed is a sliver at the run's start (it ran before this run). The
time axis runs from the run's start to its end (or now, for a live run, with a line marking now). A
bar's tooltip names the task, attempt, state and duration; clicking it opens that attempt
(`data-href`, handled by the page's script).
"""

from __future__ import annotations

import heapq
import math
from dataclasses import dataclass

from aflow.ui.markup import esc, span
from aflow.ui.reader import RunSnapshot, TaskState

WIDTH = 1100
LABEL_W = 150
AXIS_H = 22
MAX_LANES = 24


@dataclass(frozen=True)
class Bar:
    """One attempt drawn: where it starts and ends on this run's clock, and how it ended."""

    task: TaskState
    start: float
    end: float
    status: str  # done, caught, failed, stopped, retrying, running, reused
    attempt: int


def bars(snapshot: RunSnapshot, task: TaskState, now: float) -> list[Bar]:
    """Every attempt of `task`: each failed attempt before the latest, the latest, and for a task
    still running its growing span (from its start to now). A task reused from the
    run this one resumed ran before this run began: it is drawn as a sliver at the run's start."""
    out = []
    for rec in task.earlier:
        out.append(
            Bar(
                task,
                rec.started_at,
                rec.finished_at,
                "stopped" if rec.stopped else "failed",
                rec.attempt,
            )
        )
    latest = task.record
    if latest is not None:
        if latest.cloned_from:
            begin = snapshot.record.started_at
            out.append(Bar(task, begin, begin, "reused", latest.attempt))
        else:
            out.append(
                Bar(task, latest.started_at, latest.finished_at, task.status, latest.attempt)
            )
    elif task.started is not None:
        end = now if task.status == "running" else max(task.started, snapshot.end(now))
        out.append(Bar(task, task.started, end, task.status, task.attempts - 1))
    return out


def draw(
    snapshot: RunSnapshot, steps: list[str], link: str, now: float, running: dict[str, float]
) -> str:
    """The chart; `link` is a task's URL with `{step}` and `{task}` where they go; `running` says
    since when each running step has tasks in flight (drawn as a striped span up to now)."""
    record = snapshot.record
    start = record.started_at
    drawn = {s: [b for t in snapshot.steps.get(s, []) for b in bars(snapshot, t, now)] for s in steps}
    every = [b for bs in drawn.values() for b in bs]
    if not every and not running:
        return '<p class="muted">No task has ended yet: bars appear as tasks finish.</p>'
    last = max((b.end for b in every), default=start)
    end = max(snapshot.end(now), last) if snapshot.live else (record.finished_at or last)
    end = max(end, last)
    total = max(end - start, 1e-3)
    plot = WIDTH - LABEL_W - 12

    def x(t: float) -> float:
        return LABEL_W + (max(t, start) - start) / total * plot

    rows: list[str] = []
    y = float(AXIS_H)
    for step in steps:
        mine = drawn[step]
        if not mine and step not in running:
            continue
        lanes = _lanes(mine)
        count = min(max(lanes.values(), default=0) + 1, MAX_LANES)
        lane_h = max(3.0, min(14.0, 56.0 / count))
        band = max(22.0, count * lane_h + 8)
        rows.append(
            f'<rect class="band" x="0" y="{y:.1f}" width="{WIDTH}" height="{band:.1f}"/>'
            f'<text class="step" x="8" y="{y + band / 2 + 4:.1f}">{esc(_short(step))}</text>'
        )
        if step in running:
            since = x(running[step])
            rows.append(
                f'<rect class="in-flight" x="{since:.1f}" y="{y + 3:.1f}" '
                f'width="{max(x(now) - since, 2):.1f}" height="{band - 6:.1f}">'
                f"<title>{esc(step)}: tasks can run since {esc(span(running[step] - start))} "
                "(a bar appears as each starts)</title></rect>"
            )
        for b in mine:
            t = b.task
            lane = lanes[t.task_id] % MAX_LANES
            left = x(b.start)
            w = max(x(b.end) - left, 3.0 if b.status == "reused" else 1.5)
            top = y + 4 + lane * lane_h + (band - 8 - count * lane_h) / 2
            href = link.replace("{step}", esc(step)).replace("{task}", esc(t.task_id))
            if b.status == "reused":
                tip = f"{step}/{t.task_id}: reused from the run this one resumed (it ran there)"
            else:
                took = span(b.end - b.start) + ("…" if b.status == "running" else "")
                if b.attempt == t.attempts - 1 and t.record is None:
                    # From its first output (it began earlier), or cut short by its run's end
                    # (how long it went on is not known): at least this long.
                    took = ("" if t.exact and b.status == "running" else "≥ ") + took
                index = f" [{t.index}]" if t.index else ""
                tip = f"{step}/{t.task_id}{index} attempt {b.attempt}: {b.status}, {took}"
            rows.append(
                f'<rect class="task {b.status}" x="{left:.1f}" y="{top:.1f}" width="{w:.1f}" '
                f'height="{max(lane_h - 1, 2):.1f}" data-href="{href}?attempt={b.attempt}">'
                f"<title>{esc(tip)}</title></rect>"
            )
        y += band + 2
    axis = _axis(total, y)
    marker = ""
    if snapshot.live:
        marker = (
            f'<line class="now" x1="{x(now):.1f}" x2="{x(now):.1f}" y1="{AXIS_H - 4}" y2="{y:.1f}"/>'
        )
    return (
        f'<svg class="gantt" viewBox="0 0 {WIDTH} {y + 4:.0f}" width="100%" '
        f'preserveAspectRatio="xMinYMin meet" role="img" aria-label="task timeline">'
        + axis
        + "".join(rows)
        + marker
        + "</svg>"
    )


def _short(name: str) -> str:
    return name if len(name) <= 19 else name[:18] + "…"


def _lanes(drawn: list[Bar]) -> dict[str, int]:
    """Each task's lane: the lowest-numbered lane free when its first attempt starts (its attempts
    share the lane: they run one after another)."""
    spans: dict[str, list[float]] = {}
    for b in drawn:
        have = spans.setdefault(b.task.task_id, [b.start, b.end])
        have[0], have[1] = min(have[0], b.start), max(have[1], b.end)
    free: list[tuple[float, int]] = []  # (busy until, lane)
    spare: list[int] = []
    used = 0
    out: dict[str, int] = {}
    for task_id, (begin, finish) in sorted(spans.items(), key=lambda kv: kv[1][0]):
        while free and free[0][0] <= begin:
            heapq.heappush(spare, heapq.heappop(free)[1])
        if spare:
            lane = heapq.heappop(spare)
        else:
            lane, used = used, used + 1
        out[task_id] = lane
        heapq.heappush(free, (finish, lane))
    return out


def _axis(total: float, bottom: float) -> str:
    step = _tick(total)
    marks = []
    n = 0
    while n * step <= total + 1e-9:
        pos = LABEL_W + n * step / total * (WIDTH - LABEL_W - 12)
        marks.append(
            f'<line class="tick" x1="{pos:.1f}" x2="{pos:.1f}" y1="{AXIS_H - 4}" y2="{bottom:.1f}"/>'
            f'<text class="tick-label" x="{pos:.1f}" y="{AXIS_H - 8}" text-anchor="middle">'
            f"{esc(_tick_label(n * step))}</text>"
        )
        n += 1
    return "".join(marks)


def _tick(total: float) -> float:
    """A round interval giving about eight ticks over `total` seconds."""
    raw = total / 8
    for nice in (1, 2, 5, 10, 15, 30, 60, 120, 300, 600, 900, 1800, 3600, 7200):
        if raw <= nice:
            return float(nice) if raw >= 1 else _small(raw)
    return 3600 * math.ceil(raw / 3600)


def _small(raw: float) -> float:
    magnitude = 10.0 ** math.floor(math.log10(raw))
    for m in (1, 2, 5, 10):
        if raw <= m * magnitude:
            return m * magnitude
    return 10 * magnitude


def _tick_label(seconds: float) -> str:
    if seconds == 0:
        return "0"
    if seconds < 1:
        return f"{seconds * 1000:.0f}ms"
    if seconds < 60:
        return f"{seconds:g}s"
    if seconds < 3600:
        return f"{seconds / 60:g}m"
    return f"{seconds / 3600:g}h"
