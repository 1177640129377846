"""Small process helpers the local backend and its warm parent share: stopping a task's process
group, reading an exit status, and cutting a byte stream into lines."""

from __future__ import annotations

import os
import signal

from aflow.backends.lines import LineSplitter
from aflow.engine.wire import TaskExit

__all__ = ["TERM_GRACE", "LineSplitter", "kill_group", "task_exit"]

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
