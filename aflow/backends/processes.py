"""Small process helpers the local backend and its warm parent share: stopping a task's process
group, reading an exit status, and cutting a byte stream into lines."""

from __future__ import annotations

import os
import signal

from aflow.backends.base import TaskExit

# Seconds a task gets between SIGTERM and SIGKILL: its cleanup (aborting a multipart upload, the
# user's finally blocks) may need a while on a loaded machine. Docker's stop waits as long.
TERM_GRACE = 10.0


def kill_group(pgid: int, sig: int) -> None:
    try:
        os.killpg(pgid, sig)
    except (ProcessLookupError, PermissionError):
        pass


def task_exit(code: int) -> TaskExit:
    """A TaskExit from an exit code (negative: killed by that signal)."""
    if code < 0:
        return TaskExit(code, f"killed by {signal.Signals(-code).name}")
    return TaskExit(code, None if code == 0 else f"exited with code {code}")


class LineSplitter:
    """Whole lines out of chunks of bytes; what is left at the end is a last line of its own."""

    def __init__(self) -> None:
        self._pending = b""

    def feed(self, chunk: bytes) -> list[str]:
        *lines, self._pending = (self._pending + chunk).split(b"\n")
        return [line.decode(errors="replace") for line in lines]

    def rest(self) -> list[str]:
        rest, self._pending = self._pending, b""
        return [rest.decode(errors="replace")] if rest else []
