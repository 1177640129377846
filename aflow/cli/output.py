"""How a run looks in the terminal: one line per task event and per task output line.

Each task's output is prefixed `[run_id/step/task_id]` so lines of concurrent tasks interleave
safely: they are printed whole, by this one consumer of the event stream, never by the tasks.
"""

from __future__ import annotations

import sys
import time
from typing import TextIO

from aflow.engine import events as ev


class RunPrinter:
    def __init__(self, quiet: bool = False, out: TextIO = sys.stdout, err: TextIO = sys.stderr):
        self.quiet = quiet
        self.out = out
        self.err = err
        color = out.isatty()
        self._dim = "\033[2m" if color else ""
        self._red = "\033[31m" if color else ""
        self._off = "\033[0m" if color else ""

    @staticmethod
    def _short(pathspec: str) -> str:
        return pathspec.split("/", 1)[1]

    def _say(self, text: str) -> None:
        stamp = time.strftime("%Y-%m-%d %H:%M:%S")
        print(f"{self._dim}{stamp}{self._off} {text}", file=self.out)

    def handle(self, event: ev.Event) -> None:
        if isinstance(event, ev.LogLine):
            stream = self.out if event.stream == "stdout" else self.err
            print(f"{self._dim}[{self._short(event.pathspec)}]{self._off} {event.line}", file=stream)
        elif isinstance(event, ev.TaskFailed):
            then = "; retrying" if event.retrying else ""
            where = self._short(event.pathspec)
            self._say(f"{self._red}[{where}] Task failed: {event.message}{then}{self._off}")
        elif self.quiet:
            return
        elif isinstance(event, ev.RunStarted):
            resuming = f", resuming {event.origin_run_id}" if event.origin_run_id else ""
            self._say(
                f"Workflow {event.flow} starting (run-id {event.run_id}{resuming}) in {event.datastore}"
            )
        elif isinstance(event, ev.TaskStarted):
            note = f" (retry {event.attempt})" if event.attempt else ""
            if event.fallback:
                note = " (@catch: recording the failure)"
            self._say(f"[{self._short(event.pathspec)}] Task is starting{note}.")
        elif isinstance(event, ev.TaskFinished):
            how = "reused from the origin run" if event.cloned else f"{event.seconds:.2f}s"
            self._say(f"[{self._short(event.pathspec)}] Task finished ({how}).")

    def finish(self, event: ev.RunFinished) -> None:
        self.out.flush()
        if event.status == "done":
            self._say("Done!")
        else:
            self._say(f"{self._red}Run {event.flow}/{event.run_id} {event.status}.{self._off}")
            if event.error:
                print(f"{self._red}{event.error}{self._off}", file=self.err)
        self.out.flush()
        self.err.flush()
