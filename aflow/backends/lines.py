"""Cutting a task's output into the lines its log keeps: linear in what is fed, bounded in memory.

A line is what ends in a newline. A carriage return redraws the line in place (tqdm's and keras's
progress bars write frames ending in `\\r`), so a line keeps only its last frame, as a terminal
would show it; `\\r\\n` ends a line like `\\n`. A line longer than LINE_LIMIT keeps its head and
its tail with a note of how much of its middle was cut, so one 60 MB line costs neither 60 MB nor
quadratic time. ANSI colour codes pass through untouched: whoever shows the log decides.
"""

from __future__ import annotations

LINE_LIMIT = 64 << 10  # bytes a line may hold before its middle is cut
_KEEP = LINE_LIMIT // 2  # bytes kept at each end of a longer line


class LineSplitter:
    """Whole lines out of chunks of bytes; what is left at the end is a last line of its own."""

    def __init__(self) -> None:
        self._head = bytearray()
        self._tail = bytearray()  # the line's last bytes, once it passed LINE_LIMIT
        self._cut = 0  # bytes dropped from the line's middle
        self._over = False
        self._cr = False  # the line so far ended in \r: a new frame or the line's end follows

    def feed(self, chunk: bytes | bytearray | memoryview) -> list[str]:
        raw = chunk if isinstance(chunk, bytes) else bytes(chunk)
        out: list[str] = []
        start = 0
        while (end := raw.find(b"\n", start)) >= 0:
            self._add(raw, start, end)
            out.append(self._take())
            start = end + 1
        self._add(raw, start, len(raw))
        return out

    def rest(self) -> list[str]:
        if not (self._head or self._tail or self._cut):
            self._reset()
            return []
        return [self._take()]

    def _add(self, raw: bytes, start: int, end: int) -> None:
        if start == end:
            return
        if self._cr:  # text after a \r: a new frame replaces the line
            self._reset()
        last_cr = raw.rfind(b"\r", start, end)
        if last_cr < 0:
            self._append(raw, start, end)
            return
        if last_cr == end - 1:  # ends in \r: keep this frame until we know what follows
            frame_start = raw.rfind(b"\r", start, last_cr) + 1 or start
            if frame_start > start:
                self._reset()
            self._append(raw, frame_start, last_cr)
            self._cr = True
        else:
            self._reset()
            self._append(raw, last_cr + 1, end)

    def _append(self, raw: bytes, start: int, end: int) -> None:
        size = end - start
        if not self._over and len(self._head) + size <= LINE_LIMIT:
            self._head += raw[start:end]
            return
        if not self._over:
            self._over = True
            self._tail = self._head[_KEEP:]
            del self._head[_KEEP:]
        if size >= _KEEP:  # the piece alone fills the tail
            self._cut += len(self._tail) + size - _KEEP
            self._tail = bytearray(raw[end - _KEEP : end])
            return
        self._tail += raw[start:end]
        extra = len(self._tail) - _KEEP
        if extra > 0:
            self._cut += extra
            del self._tail[:extra]

    def _take(self) -> str:
        line = self._head.decode(errors="replace")
        if self._over:
            total = len(self._head) + self._cut + len(self._tail)
            note = f" … [{self._cut:,} of this line's {total:,} bytes cut] … "
            line += note + self._tail.decode(errors="replace")
        self._reset()
        return line

    def _reset(self) -> None:
        self._head = bytearray()
        self._tail = bytearray()
        self._cut = 0
        self._over = self._cr = False
