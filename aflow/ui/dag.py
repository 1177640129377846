"""The run's DAG as an SVG picture, laid out on the server: steps as boxes, left to right.

Each step sits in the column of its longest path from `start`; within a column, steps are ordered by
where their neighbours are (a few barycenter sweeps), which keeps branches from crossing in the flows
people write. A step is coloured by its state and shows its task counts; a step run once per foreach
item is drawn as a stack of cards, a foreach edge says what it fans out over and how wide, and a
join's incoming edges meet at its box. Every box links to the run's task table for that step.
"""

from __future__ import annotations

from typing import Any

from aflow.ui.markup import STATUS_WORDS, esc
from aflow.ui.progress import StepProgress, predecessors

NODE_W, NODE_H = 184, 64
GAP_X, GAP_Y = 76, 26
PAD = 14
STACK = 5  # the offset of each card behind a foreach body's box


def columns(steps: dict[str, dict[str, Any]]) -> list[list[str]]:
    """The steps in columns by longest path from the start, ordered to keep edges apart."""
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


def draw(steps: dict[str, dict[str, Any]], progress: dict[str, StepProgress], link: str) -> str:
    """The SVG; `link` is the URL a box leads to, with `{step}` where the step's name goes."""
    if not steps:
        return '<p class="muted">This run recorded no graph.</p>'
    cols = columns(steps)
    tallest = max(len(c) for c in cols)
    height = PAD * 2 + tallest * NODE_H + (tallest - 1) * GAP_Y + STACK * 2
    width = PAD * 2 + len(cols) * NODE_W + (len(cols) - 1) * GAP_X + STACK * 2
    at: dict[str, tuple[float, float]] = {}
    for c, col in enumerate(cols):
        top = (height - (len(col) * NODE_H + (len(col) - 1) * GAP_Y)) / 2
        for r, name in enumerate(col):
            at[name] = (PAD + c * (NODE_W + GAP_X), top + r * (NODE_H + GAP_Y))
    edges = [
        _edge(steps, progress, s, n, at) for s in steps for n in steps[s].get("next", []) if n in at
    ]
    nodes = [_node(steps, progress.get(s), s, at[s], link) for s in steps]
    return (
        # Shrinks to fit the page, down to half size (then the box scrolls): long flows stay readable.
        # (The page's script sets the sizes: the CSP allows no inline style.)
        f'<svg class="dag" viewBox="0 0 {width} {height:.0f}" width="100%" '
        f'data-max-width="{width}" data-min-width="{width * 0.5:.0f}" role="img" '
        f'aria-label="the run\'s steps">'
        '<defs><marker id="arrow" viewBox="0 0 10 10" refX="9" refY="5" markerWidth="7" '
        'markerHeight="7" orient="auto-start-reverse"><path d="M0,0 L10,5 L0,10 z"/></marker></defs>'
        + "".join(edges)
        + "".join(nodes)
        + "</svg>"
    )


def in_foreach(steps: dict[str, dict[str, Any]], name: str) -> bool:
    """Whether the step runs once per item of a foreach (its innermost split is a foreach)."""
    inner = steps.get(name, {}).get("split_parents") or []
    return bool(inner) and steps.get(inner[-1], {}).get("type") == "foreach"


def _edge(
    steps: dict[str, dict[str, Any]],
    progress: dict[str, StepProgress],
    src: str,
    dst: str,
    at: dict[str, tuple[float, float]],
) -> str:
    (x1, y1), (x2, y2) = at[src], at[dst]
    x1, y1 = x1 + NODE_W, y1 + NODE_H / 2
    y2 += NODE_H / 2
    # An edge that skips columns runs straight at its source's height and bends in the last gap,
    # so it passes between the boxes of the columns it skips rather than through them.
    bend = max(x1, x2 - GAP_X)
    mid = (bend + x2) / 2
    path = (
        f"M{x1:.0f},{y1:.0f} L{bend:.0f},{y1:.0f} "
        f"C{mid:.0f},{y1:.0f} {mid:.0f},{y2:.0f} {x2 - 2:.0f},{y2:.0f}"
    )
    info = steps[src]
    if info.get("type") == "foreach":
        kind = "foreach"
    else:
        kind = "join" if steps[dst].get("type") == "join" else ""
    label = ""
    if kind == "foreach":
        width = progress[dst].expected if dst in progress else None
        times = "\N{MULTIPLICATION SIGN}"
        text = f"{times}{width:,}" if width is not None else f"{times}n"
        label = (
            f'<text class="edge-label" x="{mid:.0f}" y="{min(y1, y2) - 7:.0f}" '
            f'text-anchor="middle">{esc(text)}<title>one task per item of '
            f"{esc(info.get('foreach') or '')}</title></text>"
        )
    return f'<path class="edge {kind}" d="{path}" marker-end="url(#arrow)"/>{label}'


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
        f'<text class="counts" x="{x + 16:.0f}" y="{y + 54:.0f}">{counts}</text>'
        "</a>"
    )


def _counts(progress: StepProgress | None) -> str:
    if progress is None:
        return ""
    word = STATUS_WORDS.get(progress.state, progress.state)
    parts = [f'<tspan class="state">{esc(word)}</tspan>']
    if progress.expected is not None or progress.done:
        parts.append(f"{esc(progress.label)} tasks")
    if progress.failed:
        parts.append(f'<tspan class="bad">{progress.failed} failed</tspan>')
    if progress.retrying:
        parts.append(f"{progress.retrying} retrying")
    return " · ".join(parts)
