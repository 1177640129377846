"""A task's output on its page: lines as the terminal showed them, searchable, whole or in part.

- Progress bars (tqdm, keras) redraw a line with `\r`: a line shows its last frame. Older saved logs
  were split at each `\r` when read, leaving pieces with no time or stream of their own; such a
  piece belongs to the line before it, so counts per stream stay right.
- ANSI colours (SGR codes) become spans with fixed class names (the page's CSP allows no inline
  style); every other escape sequence is dropped; the text itself is always escaped.
- The page shows the last LINES_SHOWN lines, or all of them (`lines=all`), or the lines matching a
  search (`q=`, over the whole log, case-insensitive); the raw log downloads as a file.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime

from aflow.client.core import LogLine
from aflow.ui.markup import esc, url
from aflow.ui.reader import AttemptView, TaskView

LINES_SHOWN = 5000
MATCHES_SHOWN = 20000
STREAMS = ("stdout", "stderr")
_STAMP = re.compile(r"\d{4}-\d\d-\d\dT")
_ESCAPE = re.compile(r"\x1b(?:\[([0-9;:?]*)([@-~])|\][^\x07\x1b]*(?:\x07|\x1b\\)?|[@-Z\\-_])")
# The 16 colours by their SGR offset; 256-colour and RGB codes map to the nearest of them.
_BASIC = [
    (0, 0, 0), (205, 49, 49), (13, 188, 121), (229, 229, 16),
    (36, 114, 200), (188, 63, 188), (17, 168, 205), (229, 229, 229),
    (102, 102, 102), (241, 76, 76), (35, 209, 139), (245, 245, 67),
    (59, 142, 234), (214, 112, 214), (41, 184, 219), (255, 255, 255),
]  # fmt: skip


@dataclass(frozen=True)
class LogChoice:
    """What the page asked to see: a search, or every line rather than the last LINES_SHOWN."""

    query: str = ""
    everything: bool = False


def repair(lines: list[LogLine]) -> list[LogLine]:
    """The saved lines, each piece an older reader split off at a `\r` joined back to its line."""
    out: list[LogLine] = []
    for ln in lines:
        if out and (ln.stream not in STREAMS or not _STAMP.match(ln.stamp)):
            prev = out[-1]
            piece = " ".join(p for p in (ln.stamp, ln.stream, ln.text) if p)
            out[-1] = LogLine(prev.stamp, prev.stream, prev.text + "\r" + piece)
        else:
            out.append(ln)
    return out


def last_frame(text: str) -> str:
    """What a terminal shows of a line redrawn with `\r`: its last non-empty frame."""
    if "\r" not in text:
        return text
    frames = [f for f in text.split("\r") if f.strip()]
    return frames[-1] if frames else ""


def visible(text: str) -> str:
    """The text a reader sees (last frame, no escape codes): what a search looks in."""
    return _ESCAPE.sub("", last_frame(text))


def ansi_html(text: str) -> str:
    """The line's last frame as HTML: SGR colours as classed spans, other escapes dropped."""
    text = last_frame(text)
    if "\x1b" not in text:
        return esc(text)
    out: list[str] = []
    state: dict[str, str] = {}
    pos = 0
    for m in _ESCAPE.finditer(text):
        out.append(_span(text[pos : m.start()], state))
        pos = m.end()
        if m.group(2) == "m":
            _sgr(m.group(1) or "0", state)
    out.append(_span(text[pos:], state))
    return "".join(out)


def _span(chunk: str, state: dict[str, str]) -> str:
    if not chunk:
        return ""
    if not state:
        return esc(chunk)
    classes = " ".join(sorted(state.values()))
    return f'<span class="{classes}">{esc(chunk)}</span>'


def _nearest(rgb: tuple[int, int, int]) -> int:
    return min(range(16), key=lambda i: sum((a - b) ** 2 for a, b in zip(_BASIC[i], rgb, strict=True)))


def _xterm(n: int) -> tuple[int, int, int]:
    if n < 16:
        return _BASIC[n]
    if n < 232:
        n -= 16
        steps = (0, 95, 135, 175, 215, 255)
        return steps[n // 36], steps[n // 6 % 6], steps[n % 6]
    grey = 8 + (n - 232) * 10
    return grey, grey, grey


def _sgr(params: str, state: dict[str, str]) -> None:
    codes = [int(c) if c.isdigit() else 0 for c in re.split("[;:]", params)]
    i = 0
    while i < len(codes):
        c = codes[i]
        if c == 0:
            state.clear()
        elif c in (1, 2, 3, 4):
            state[f"s{c}"] = ("a-b", "a-d", "a-i", "a-u")[c - 1]
        elif c in (22, 23, 24):
            for k in {22: ("s1", "s2"), 23: ("s3",), 24: ("s4",)}[c]:
                state.pop(k, None)
        elif 30 <= c <= 37 or 90 <= c <= 97:
            state["fg"] = f"a-f{c - 30 if c < 90 else c - 82}"
        elif 40 <= c <= 47 or 100 <= c <= 107:
            state["bg"] = f"a-g{c - 40 if c < 100 else c - 92}"
        elif c == 39:
            state.pop("fg", None)
        elif c == 49:
            state.pop("bg", None)
        elif c in (38, 48) and i + 1 < len(codes):
            key, letter = ("fg", "f") if c == 38 else ("bg", "g")
            if codes[i + 1] == 5 and i + 2 < len(codes):
                state[key] = f"a-{letter}{_nearest(_xterm(codes[i + 2] % 256))}"
                i += 2
            elif codes[i + 1] == 2 and i + 4 < len(codes):
                rgb = (codes[i + 2] % 256, codes[i + 3] % 256, codes[i + 4] % 256)
                state[key] = f"a-{letter}{_nearest(rgb)}"
                i += 4
        i += 1


def stamp_clock(stamp: str) -> str:
    """`2024-05-01T12:00:01.234567Z` as the local clock time, to the millisecond."""
    try:
        t = datetime.fromisoformat(stamp.replace("Z", "+00:00")).astimezone()
    except ValueError:
        return stamp
    return t.strftime("%H:%M:%S.") + f"{t.microsecond // 1000:03d}"


def log_section(
    view: TaskView, attempt: AttemptView | None, choice: LogChoice, tabs: str, attempt_link: str
) -> str:
    """The Output section of a task's page."""
    if attempt is None or not attempt.log:
        if attempt and attempt.record:
            why = "The task printed nothing."
        elif view.status == "running" and attempt is view.latest:
            why = (
                "Nothing saved yet: what a task prints is saved every few seconds while it runs "
                "(a remote task's when it ends), and shows here."
            )
        else:
            why = "No output was saved: this attempt never finished."
        return f'{tabs}<h2>Output</h2><p class="muted empty-log">{why}</p>'
    lines = repair(attempt.log)
    counts = {s: sum(ln.stream == s for ln in lines) for s in STREAMS}
    task = view.task
    here = url("task", task.flow, task.run_id, task.step, task.id)
    keep = {"attempt": attempt_link}
    note = ""
    if choice.query:
        wanted = choice.query.lower()
        shown = [ln for ln in lines if wanted in visible(ln.text).lower()]
        clear = url("task", task.flow, task.run_id, task.step, task.id, **keep)
        note = (
            f'<p class="muted log-note"><b class="matches">{len(shown):,}</b> of {len(lines):,} lines '
            f'match <code>{esc(choice.query)}</code> · <a href="{esc(clear)}">clear the search</a></p>'
        )
        shown = shown[:MATCHES_SHOWN]
    elif choice.everything or len(lines) <= LINES_SHOWN:
        shown = lines
    else:
        shown = lines[-LINES_SHOWN:]
        every = url("task", task.flow, task.run_id, task.step, task.id, lines="all", **keep)
        note = (
            f'<p class="muted log-note">The last {LINES_SHOWN:,} of {len(lines):,} lines · '
            f'<a href="{esc(every)}">show all {len(lines):,}</a></p>'
        )
    body = "".join(
        f'<div class="ln {"err" if ln.stream == "stderr" else "out"}">'
        f'<span class="ts">{esc(stamp_clock(ln.stamp))}</span>{ansi_html(ln.text) or " "}</div>'
        for ln in shown
    )
    raw = url("raw", task.flow, task.run_id, task.step, task.id, attempt=attempt.attempt)
    download = url(
        "raw", task.flow, task.run_id, task.step, task.id, attempt=attempt.attempt, download=1
    )
    hidden = "".join(
        f'<input type="hidden" name="{k}" value="{esc(v)}">' for k, v in keep.items() if v != ""
    )
    search = (
        f'<form class="log-search" method="get" action="{esc(here)}" role="search">{hidden}'
        f'<input type="search" name="q" value="{esc(choice.query)}" placeholder="search the output" '
        'aria-label="search the output"></form>'
    )
    switch = (
        '<span class="streams" role="group" aria-label="which output">'
        f'<button data-show="all" class="on">both</button>'
        f'<button data-show="out">stdout <b>{counts["stdout"]:,}</b></button>'
        f'<button data-show="err">stderr <b>{counts["stderr"]:,}</b></button></span>'
        '<label class="ts-toggle"><input type="checkbox" data-times> times</label>'
        f'<a class="rawlink" href="{raw}">raw</a>'
        f'<a class="rawlink" href="{download}" download>download</a>'
    )
    return (
        f'{tabs}<div class="bar-line log-bar"><h2>Output</h2>{search}{switch}</div>{note}'
        f'<div class="log show-all" data-lines="{len(lines)}">{body}</div>'
    )


def raw_text(lines: list[LogLine]) -> str:
    """The saved log as text (time, stream, line), each line whole as it was saved."""
    return "".join(f"{ln.stamp} {ln.stream} {ln.text}\n" for ln in repair(lines))
