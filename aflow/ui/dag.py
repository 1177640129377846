"""The run's DAG as an SVG picture, laid out on the server: steps as boxes, left to right (top to
bottom for a flow of VERTICAL_FROM columns or more, so a 20-step pipeline stays legible).

Each step sits in the column of its longest path from `start`; within a column, steps are ordered by
where their neighbours are (a few barycenter sweeps), which keeps branches from crossing in the flows
people write. A step is coloured by its state and shows its task counts; a step run once per foreach
item is drawn as a stack of cards, a foreach edge says what it fans out over and how wide, and a
join's incoming edges meet at its box. An edge that skips columns turns into a channel clear of the
boxes it passes, so `a -> c` is never drawn under `b`. Every box links to the run's task table for
that step.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from aflow.ui.markup import STATUS_WORDS, esc
from aflow.ui.progress import StepProgress, predecessors

NODE_W, NODE_H = 184, 78
GAP_X, GAP_Y = 76, 26
PAD = 14
STACK = 5  # the offset of each card behind a foreach body's box


def columns(steps: dict[str, dict[str, Any]]) -> list[list[str]]:
    """The steps in columns by longest path from the start, ordered to keep edges apart. A
    recursion's edge back to an earlier step does not count: it is drawn as an arc."""
    steps = {
        name: {**info, "next": [n for n in info.get("next", []) if n not in info.get("loops_to", [])]}
        for name, info in steps.items()
    }
    before = predecessors(steps)
    depth: dict[str, int] = {}

    def level(name: str, seen: frozenset[str] = frozenset()) -> int:
        if name not in depth:
            parents = [p for p in before.get(name, []) if p not in seen]
            depth[name] = 1 + max((level(p, seen | {name}) for p in parents), default=-1)
        return depth[name]

    for name in steps:
        level(name)
    cols: list[list[str]] = [[] for _ in range(max(depth.values(), default=0) + 1)]
    for name in steps:  # graph order first: the author's order breaks ties
        cols[depth[name]].append(name)
    after = {s: list(info.get("next", [])) for s, info in steps.items()}
    for _ in range(3):
        _sweep(cols, before, forward=True)
        _sweep(cols, after, forward=False)
    return cols


def _sweep(cols: list[list[str]], neighbours: dict[str, list[str]], forward: bool) -> None:
    indices = range(1, len(cols)) if forward else range(len(cols) - 2, -1, -1)
    for i in indices:
        ref = cols[i - 1] if forward else cols[i + 1]
        where = {s: n for n, s in enumerate(ref)}

        def centre(name: str, here: int, where: dict[str, int] = where) -> float:
            near = [where[n] for n in neighbours.get(name, []) if n in where]
            return sum(near) / len(near) if near else float(here)

        cols[i] = [s for _, s in sorted((centre(s, n), s) for n, s in enumerate(cols[i]))]


VERTICAL_FROM = 9  # columns: a longer flow is drawn top to bottom, so it stays legible


@dataclass(frozen=True)
class Layout:
    """Where boxes go. `main` runs along the flow (left to right, or top to bottom when
    `vertical`), `cross` across it; `at` holds each box's top-left corner in (main, cross)."""

    vertical: bool
    at: dict[str, tuple[float, float]]
    cols: list[list[str]]
    main_size: float  # a box's extent along the flow
    cross_size: float
    gap: float  # between columns, along the flow
    width: float
    height: float

    def xy(self, main: float, cross: float) -> tuple[float, float]:
        return (cross, main) if self.vertical else (main, cross)

    def box(self, name: str) -> tuple[float, float]:
        """The box's top-left corner in picture coordinates."""
        return self.xy(*self.at[name])


def layout(steps: dict[str, dict[str, Any]]) -> Layout:
    cols = columns(steps)
    vertical = len(cols) >= VERTICAL_FROM
    main_size, cross_size = (NODE_H, NODE_W) if vertical else (NODE_W, NODE_H)
    gap, cross_gap = (44, 30) if vertical else (GAP_X, GAP_Y)
    tallest = max(len(c) for c in cols)
    cross_total = PAD * 2 + tallest * cross_size + (tallest - 1) * cross_gap + STACK * 2
    main_total = PAD * 2 + len(cols) * main_size + (len(cols) - 1) * gap + STACK * 2
    at: dict[str, tuple[float, float]] = {}
    for c, col in enumerate(cols):
        top = (cross_total - (len(col) * cross_size + (len(col) - 1) * cross_gap)) / 2
        for r, name in enumerate(col):
            at[name] = (PAD + c * (main_size + gap), top + r * (cross_size + cross_gap))
    width, height = (cross_total, main_total) if vertical else (main_total, cross_total)
    return Layout(vertical, at, cols, main_size, cross_size, gap, width, height)


def draw(steps: dict[str, dict[str, Any]], progress: dict[str, StepProgress], link: str) -> str:
    """The SVG; `link` is the URL a box leads to, with `{step}` where the step's name goes."""
    if not steps:
        return '<p class="muted">This run recorded no graph.</p>'
    lay = layout(steps)
    edges = [
        _edge(steps, progress, s, n, lay) for s in steps for n in steps[s].get("next", []) if n in lay.at
    ]
    nodes = [_node(steps, progress.get(s), s, lay.box(s), link) for s in steps]
    width, height = lay.width, lay.height
    # Shrinks to fit the page, down to half size (then the box scrolls): long flows stay readable.
    # A vertical one keeps its size: it scrolls down with the page. (The page's script sets the
    # sizes: the CSP allows no inline style.)
    least = width if lay.vertical else width * 0.5
    return (
        f'<svg class="dag{" vertical" if lay.vertical else ""}" viewBox="0 0 {width:.0f} {height:.0f}" '
        f'width="100%" data-max-width="{width:.0f}" data-min-width="{least:.0f}" role="img" '
        'aria-label="the run\'s steps">'
        '<defs><marker id="arrow" viewBox="0 0 10 10" refX="9" refY="5" markerWidth="7" '
        'markerHeight="7" orient="auto-start-reverse"><path d="M0,0 L10,5 L0,10 z"/></marker></defs>'
        + "".join(edges)
        + "".join(nodes)
        + "</svg>"
    )


def _channel(lay: Layout, src: str, dst: str, c1: float, c2: float) -> float | None:
    """For an edge that skips columns: a cross position clear of every box in the columns it
    passes (so `a -> c` is never drawn under `b`, reading as `a -> b -> c`); None for neighbours."""
    first = next(i for i, col in enumerate(lay.cols) if src in col)
    last = next(i for i, col in enumerate(lay.cols) if dst in col)
    between = [n for col in lay.cols[first + 1 : last] for n in col]
    if not between:
        return None
    margin = 6.0
    taken = [
        (lay.at[n][1] - margin - STACK, lay.at[n][1] + lay.cross_size + STACK * 3 + margin)
        for n in between
    ]

    def free(c: float) -> bool:
        return all(not lo < c < hi for lo, hi in taken)

    candidates = [c1] + [lo for lo, _ in taken] + [hi for _, hi in taken]
    goal = (c1 + c2) / 2
    fits = [c for c in candidates if free(c)]
    return min(fits, key=lambda c: (abs(c - c1) + abs(c - goal), c))


def _edge(
    steps: dict[str, dict[str, Any]],
    progress: dict[str, StepProgress],
    src: str,
    dst: str,
    lay: Layout,
) -> str:
    info = steps[src]
    cases = [str(k) for k, v in (info.get("switch_cases") or {}).items() if v == dst]
    (m1, c1), (m2, c2) = lay.at[src], lay.at[dst]
    if m2 <= m1:
        return _loop_edge(lay, src, dst, info, cases)
    m1, c1 = m1 + lay.main_size, c1 + lay.cross_size / 2
    c2 += lay.cross_size / 2
    lane = _channel(lay, src, dst, c1, c2)
    half = lay.gap / 2

    def p(m: float, c: float) -> str:
        x, y = lay.xy(m, c)
        return f"{x:.0f},{y:.0f}"

    if lane is None:
        mid = (m1 + m2) / 2
        path = f"M{p(m1, c1)} C{p(mid, c1)} {p(mid, c2)} {p(m2 - 2, c2)}"
        label_at = lay.xy(mid, min(c1, c2))
    else:
        # Into a channel in the first gap, along it past the columns in between, out of it in
        # the last gap.
        a, b = m1 + lay.gap, m2 - lay.gap
        path = (
            f"M{p(m1, c1)} C{p(m1 + half, c1)} {p(m1 + half, lane)} {p(a, lane)} "
            f"L{p(b, lane)} C{p(b + half, lane)} {p(b + half, c2)} {p(m2 - 2, c2)}"
        )
        label_at = lay.xy(m1 + half, min(c1, lane))
    if cases:
        return _edge_with_cases(path, label_at, lay, info, cases)
    if info.get("type") == "foreach":
        kind = "foreach"
    else:
        kind = "join" if steps[dst].get("type") == "join" else ""
    label = ""
    if kind == "foreach":
        width = progress[dst].expected if dst in progress else None
        times = "\N{MULTIPLICATION SIGN}"
        text = f"{times}{width:,}" if width is not None else f"{times}n"
        lx, ly = label_at
        if lay.vertical:
            lx, ly = lx + 8, ly  # beside the edge, not over it
        anchor = "start" if lay.vertical else "middle"
        label = (
            f'<text class="edge-label" x="{lx:.0f}" y="{ly - (0 if lay.vertical else 7):.0f}" '
            f'text-anchor="{anchor}">{esc(text)}<title>one task per item of '
            f"{esc(info.get('foreach') or '')}</title></text>"
        )
    return f'<path class="edge {kind}" d="{path}" marker-end="url(#arrow)"/>{label}'


def _case_label(x: float, y: float, info: dict[str, Any], cases: list[str]) -> str:
    text = " | ".join(cases)
    why = f"when {info.get('condition') or 'the condition'} is {' or '.join(cases)}"
    return (
        f'<text class="edge-label cond" x="{x:.0f}" y="{y:.0f}" text-anchor="middle">'
        f"{esc(text)}<title>{esc(why)}</title></text>"
    )


def _edge_with_cases(
    path: str, label_at: tuple[float, float], lay: Layout, info: dict[str, Any], cases: list[str]
) -> str:
    """An edge of a conditional step: dashed, labelled with the value(s) of its condition."""
    lx, ly = label_at
    if lay.vertical:
        lx += 8
    label = _case_label(lx, ly - (0 if lay.vertical else 7), info, cases)
    return f'<path class="edge cond" d="{path}" marker-end="url(#arrow)"/>{label}'


def _loop_edge(lay: Layout, src: str, dst: str, info: dict[str, Any], cases: list[str]) -> str:
    """A conditional step going back to itself or an earlier step (recursion): an arc over the
    boxes, from the step's far side back to the earlier step's near side."""
    (m1, c1), (m2, c2) = lay.at[src], lay.at[dst]
    passed = [lay.at[n][1] for n, (m, _) in lay.at.items() if m2 <= m <= m1]
    over = min(passed) - lay.cross_size / 2  # above every box it passes (the picture lets it show)
    start, end = (m1 + lay.main_size * 0.7, c1), (m2 + lay.main_size * 0.3, c2)

    def p(m: float, c: float) -> str:
        x, y = lay.xy(m, c)
        return f"{x:.0f},{y:.0f}"

    path = f"M{p(*start)} C{p(start[0], over)} {p(end[0], over)} {p(end[0], end[1] - 2)}"
    lx, ly = lay.xy((start[0] + end[0]) / 2, over + lay.cross_size / 8)
    label = _case_label(lx, ly, info, cases) if cases else ""
    return f'<path class="edge cond loop" d="{path}" marker-end="url(#arrow)"/>{label}'


def in_foreach(steps: dict[str, dict[str, Any]], name: str) -> bool:
    """Whether the step runs once per item of a foreach (its innermost split is a foreach)."""
    inner = steps.get(name, {}).get("split_parents") or []
    return bool(inner) and steps.get(inner[-1], {}).get("type") == "foreach"


def _node(
    steps: dict[str, dict[str, Any]],
    progress: StepProgress | None,
    name: str,
    xy: tuple[float, float],
    link: str,
) -> str:
    x, y = xy
    info = steps[name]
    state = progress.state if progress else "pending"
    kind = info.get("type", "")
    what = f"foreach {info.get('foreach')}" if kind == "foreach" else kind
    decorators = info.get("decorators") or {}
    names = [d for d in decorators if d not in ("step",)]
    if names:
        what += " · " + ", ".join(f"@{d}" for d in names)
    counts = _counts(progress)
    cards = ""
    if in_foreach(steps, name):
        cards = "".join(
            f'<rect class="card" x="{x + k * STACK:.0f}" y="{y + k * STACK:.0f}" '
            f'width="{NODE_W}" height="{NODE_H}" rx="7"/>'
            for k in (2, 1)
        )
    title = f"{name} ({kind}): {STATUS_WORDS.get(state, state)}"
    if info.get("doc"):
        title += "\n" + str(info["doc"]).strip()
    shown = name if len(name) <= 22 else name[:21] + "…"
    what = what if len(what) <= 30 else what[:29] + "…"
    href = link.replace("{step}", esc(name))
    return (
        f'<a class="node {esc(state)}" href="{href}" data-step="{esc(name)}">'
        f"<title>{esc(title)}</title>{cards}"
        f'<rect class="box" x="{x:.0f}" y="{y:.0f}" width="{NODE_W}" height="{NODE_H}" rx="7"/>'
        f'<rect class="bar" x="{x:.0f}" y="{y:.0f}" width="6" height="{NODE_H}" rx="3"/>'
        f'<text class="name" x="{x + 16:.0f}" y="{y + 21:.0f}">{esc(shown)}</text>'
        f'<text class="kind" x="{x + 16:.0f}" y="{y + 37:.0f}">{esc(what)}</text>'
        f'<text class="counts" x="{x + 16:.0f}" y="{y + 54:.0f}">{counts[0]}</text>'
        f'<text class="counts" x="{x + 16:.0f}" y="{y + 69:.0f}">{counts[1]}</text>'
        "</a>"
    )


def _counts(progress: StepProgress | None) -> tuple[str, str]:
    """The node's two count lines: its state and tasks done, then what else happened to them."""
    if progress is None:
        return "", ""
    word = STATUS_WORDS.get(progress.state, progress.state)
    parts = [f'<tspan class="state">{esc(word)}</tspan>']
    if progress.expected is not None or progress.done:
        parts.append(f"{esc(progress.label)} tasks")
    more = []
    if progress.failed:
        more.append(f'<tspan class="bad">{progress.failed:,} failed</tspan>')
    if progress.caught:
        more.append(f'<tspan class="caught">{progress.caught:,} caught</tspan>')
    if progress.stopped:
        more.append(f'<tspan class="stopped">{progress.stopped:,} stopped</tspan>')
    if progress.retrying:
        more.append(f"{progress.retrying:,} retrying")
    return " · ".join(parts), " · ".join(more)
