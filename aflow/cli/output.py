"""How a run looks in the terminal: a line per task event and per task output line.

Each task's output is prefixed `[run_id/step/task_id]` so lines of concurrent tasks interleave
safely: they are printed whole, by this one consumer of the event stream, never by the tasks. On a
terminal, a foreach wider than the screen gets a live progress bar per step (done/running/failed of
total, rate, time left) instead of two lines per task; without a terminal (CI, a pipe) every line is
printed as it happens, and `--quiet` prints only the tasks' own output and failures.
"""

from __future__ import annotations

import shutil
import sys
import time
from typing import Any, TextIO

from aflow.engine import events as ev


class _StepProgress:
    def __init__(self, task_id: Any) -> None:
        self.task_id = task_id
        self.total = 0
        self.running = 0
        self.failed = 0
        self.stopped = 0


class RunPrinter:
    def __init__(
        self,
        quiet: bool = False,
        out: TextIO = sys.stdout,
        err: TextIO = sys.stderr,
        live: bool | None = None,
    ) -> None:
        self.quiet = quiet
        self.out = out
        self.err = err
        self.live = out.isatty() if live is None else live
        color = self.live
        self._dim = "\033[2m" if color else ""
        self._red = "\033[31m" if color else ""
        self._off = "\033[0m" if color else ""
        self._progress: Any = None  # a rich Progress, made for the first wide foreach
        self._steps: dict[str, _StepProgress] = {}
        self.wide = max(20, shutil.get_terminal_size((80, 24)).lines)

    @staticmethod
    def _short(pathspec: str) -> str:
        return pathspec.split("/", 1)[1]

    @staticmethod
    def _step(pathspec: str) -> str:
        return pathspec.split("/")[2]

    def _print(self, text: str, stream: TextIO | None = None) -> None:
        if self._progress is not None:  # above the bars, which stay at the bottom
            self._progress.console.print(text, markup=False, highlight=False, soft_wrap=True)
        else:
            print(text, file=stream or self.out)

    def _say(self, text: str) -> None:
        stamp = time.strftime("%Y-%m-%d %H:%M:%S")
        self._print(f"{self._dim}{stamp}{self._off} {text}")

    def handle(self, event: ev.Event) -> None:
        tracked = None
        if isinstance(event, ev.TaskStarted | ev.TaskFinished | ev.TaskFailed | ev.TaskStopped):
            tracked = self._steps.get(self._step(event.pathspec))
        if isinstance(event, ev.OutputLine):
            stream = self.out if event.stream == "stdout" else self.err
            self._print(f"{self._dim}[{self._short(event.pathspec)}]{self._off} {event.line}", stream)
        elif isinstance(event, ev.TaskFailed):
            then = ""
            if event.retrying and event.retry_in > 0:
                at = time.strftime("%H:%M:%S", time.localtime(time.time() + event.retry_in))
                then = f"; retrying in {_duration(event.retry_in)} (at {at})"
            elif event.retrying:
                then = "; retrying now"
            where = self._short(event.pathspec)
            self._say(f"{self._red}[{where}] Task failed: {event.message}{then}{self._off}")
            if tracked is not None:
                tracked.running -= 1
                tracked.failed += 0 if event.retrying else 1
                self._update(tracked)
        elif isinstance(event, ev.TaskStopped):
            if tracked is not None:
                tracked.running -= 1
                tracked.stopped += 1
                self._update(tracked)
            elif not self.quiet:
                self._say(f"{self._dim}[{self._short(event.pathspec)}] Task stopped.{self._off}")
        elif isinstance(event, ev.ForeachStarted):
            if self.live and not self.quiet and event.width >= self.wide:
                for step in event.body:
                    self._track(step, event.width)
        elif tracked is not None:
            if isinstance(event, ev.TaskStarted):
                tracked.running += 1
                self._update(tracked)
            elif isinstance(event, ev.TaskFinished):
                tracked.running -= 1
                self._update(tracked, advance=1)
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

    def _track(self, step: str, width: int) -> None:
        if self._progress is None:
            from rich.console import Console
            from rich.progress import (
                BarColumn,
                MofNCompleteColumn,
                Progress,
                TextColumn,
                TimeElapsedColumn,
                TimeRemainingColumn,
            )

            self._progress = Progress(
                TextColumn("{task.description}"),
                BarColumn(),
                MofNCompleteColumn(),
                TextColumn(
                    "{task.fields[running]} running, {task.fields[failed]} failed, "
                    "{task.fields[stopped]} stopped"
                ),
                TextColumn("{task.fields[rate]}"),
                TimeElapsedColumn(),
                TextColumn("left"),
                TimeRemainingColumn(),
                console=Console(file=self.out, force_terminal=True),
                transient=False,
            )
            self._progress.start()
        if step not in self._steps:
            task_id = self._progress.add_task(
                step, total=0, running=0, failed=0, stopped=0, rate=""
            )
            self._steps[step] = _StepProgress(task_id)
        tracked = self._steps[step]
        tracked.total += width
        self._update(tracked)

    def _update(self, tracked: _StepProgress, advance: int = 0) -> None:
        self._progress.update(
            tracked.task_id,
            total=tracked.total,
            advance=advance,
            running=tracked.running,
            failed=tracked.failed,
            stopped=tracked.stopped,
        )
        task = self._progress.tasks[tracked.task_id]
        if task.elapsed and task.completed:
            self._progress.update(tracked.task_id, rate=f"{task.completed / task.elapsed:.0f}/s")

    def finish(self, event: ev.RunFinished) -> None:
        if self._progress is not None:
            self._progress.stop()
            self._progress = None
        self.out.flush()
        if event.status == "done":
            self._say("Done!")
        else:
            counts = task_counts(event.tasks_done, event.tasks_failed, event.tasks_stopped)
            self._say(
                f"{self._red}Run {event.flow}/{event.run_id} {event.status} ({counts}).{self._off}"
            )
            if event.error:
                print(f"{self._red}{event.error}{self._off}", file=self.err)
        self.out.flush()
        self.err.flush()


def task_counts(done: int, failed: int, stopped: int) -> str:
    """'3 tasks done, 1 failed, 2 stopped': the one wording every view uses."""
    counts = f"{done} task{'' if done == 1 else 's'} done, {failed} failed"
    return f"{counts}, {stopped} stopped" if stopped else counts


def _duration(seconds: float) -> str:
    if seconds < 90:
        return f"{seconds:.0f} s"
    return f"{seconds / 60:.0f} min" if seconds % 60 == 0 else f"{seconds / 60:.1f} min"
