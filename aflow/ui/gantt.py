"""The run's timeline as an SVG Gantt chart: one band per step, one bar per task attempt that ended.

Bars are packed into lanes (a task goes in the first lane free at its start), so a 1,000-way foreach
run by 16 workers is 16 thin lanes, not 1,000 rows. The time axis runs from the run's start to its
end (or now, for a live run, with a line marking now). A bar's tooltip names the task and its
duration; clicking it opens the task (`data-href`, handled by the page's script).
"""

from __future__ import annotations

import heapq
import math

from aflow.ui.markup import esc, span
from aflow.ui.reader import RunSnapshot, TaskState

WIDTH = 1100
LABEL_W = 150
AXIS_H = 22
MAX_LANES = 24


def draw(
    snapshot: RunSnapshot, steps: list[str], link: str, now: float, running: dict[str, float]
) -> str:
    """The chart; `link` is a task's URL with `{step}` and `{task}` where they go; `running` says
    since when each running step has tasks in flight (drawn as a striped span up to now)."""
    record = snapshot.record
    start = record.started_at
    ended = [t for s in steps for t in snapshot.steps.get(s, []) if t.record is not None]
    if not ended and not running:
        return '<p class="muted">No task has ended yet: bars appear as tasks finish.</p>'
    last = _last(ended) if ended else start
    end = record.finished_at if record.finished_at else max(now, last)
    total = max(end - start, last - start, 1e-3)
    plot = WIDTH - LABEL_W - 12

    def x(t: float) -> float:
        return LABEL_W + (t - start) / total * plot

    rows: list[str] = []
    y = AXIS_H
    for step in steps:
        tasks = sorted((t for t in snapshot.steps.get(step, []) if t.record), key=_start)
        if not tasks and step not in running:
            continue
        lanes = _lanes(tasks)
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
                f"<title>{esc(step)}: tasks running since {esc(span(running[step] - start))} "
                "(a bar appears as each ends)</title></rect>"
            )
        for t in tasks:
            assert t.record is not None
            lane = lanes[t.task_id] % MAX_LANES
            left = x(t.record.started_at)
            w = max(x(t.record.finished_at) - left, 1.5)
            top = y + 4 + lane * lane_h + (band - 8 - count * lane_h) / 2
            href = link.replace("{step}", esc(step)).replace("{task}", esc(t.task_id))
            tip = f"{step}/{t.task_id}: {t.status}, {span(t.record.finished_at - t.record.started_at)}"
            rows.append(
                f'<rect class="task {t.status}" x="{left:.1f}" y="{top:.1f}" width="{w:.1f}" '
                f'height="{max(lane_h - 1, 2):.1f}" data-href="{href}"><title>{esc(tip)}</title></rect>'
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


def _start(t: TaskState) -> float:
    return t.record.started_at if t.record else 0.0


def _last(tasks: list[TaskState]) -> float:
    return max(t.record.finished_at for t in tasks if t.record)


def _short(name: str) -> str:
    return name if len(name) <= 19 else name[:18] + "…"


def _lanes(tasks: list[TaskState]) -> dict[str, int]:
    """Each task's lane: the lowest-numbered lane free when it starts (tasks sorted by start)."""
    free: list[tuple[float, int]] = []  # (busy until, lane)
    spare: list[int] = []
    used = 0
    out: dict[str, int] = {}
    for t in tasks:
        assert t.record is not None
        while free and free[0][0] <= t.record.started_at:
            heapq.heappush(spare, heapq.heappop(free)[1])
        if spare:
            lane = heapq.heappop(spare)
        else:
            lane, used = used, used + 1
        out[t.task_id] = lane
        heapq.heappush(free, (t.record.finished_at, lane))
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
    magnitude = 10 ** math.floor(math.log10(raw))
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
