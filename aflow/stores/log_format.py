"""The saved form of a task's log, one line per output line: `<ISO time> <stdout|stderr> <line>`.

Part of the store layout (beside the task record): the engine writes it, the client and the UI read
it, so it lives with the store and neither of them imports the other for it.
"""

from __future__ import annotations

from datetime import UTC, datetime

from aflow.stores.base import Buffer


def log_line(when: float, stream: str, text: str) -> bytes:
    """One saved line: the time (UTC, microseconds), the stream, the text, a newline."""
    stamp = datetime.fromtimestamp(when, UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    return f"{stamp} {stream} {text}\n".encode(errors="replace")


def parse_log(data: Buffer) -> list[tuple[str, str, str]]:
    """(timestamp, stream, line) for each saved line."""
    out = []
    # Split on newlines only: a line's text may hold \r, form feeds or other characters that
    # str.splitlines() would break it at (each piece then reads as a line of no stream).
    for raw in bytes(data).decode(errors="replace").split("\n"):
        if not raw:
            continue
        stamp, stream, text = ([*raw.split(" ", 2), "", ""])[:3]
        out.append((stamp, stream, text))
    return out
