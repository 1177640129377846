"""What the terminal shows: plain lines without a terminal, progress bars for a wide foreach on one."""

from __future__ import annotations

import io

from aflow.cli.output import RunPrinter
from aflow.engine import events as ev

RUN = "F/1"


def feed(printer: RunPrinter, width: int) -> None:
    printer.handle(ev.RunStarted("F", "1", "/store"))
    printer.handle(ev.ForeachStarted(f"{RUN}/start/1", width, ("work",)))
    for i in range(width):
        printer.handle(ev.TaskStarted(f"{RUN}/work/{i + 2}", 0))
    printer.handle(ev.OutputLine(f"{RUN}/work/2", "stdout", "hello from 2", 0.0))
    for i in range(width - 1):
        printer.handle(ev.TaskFinished(f"{RUN}/work/{i + 2}", 0, 0.1))
    printer.handle(ev.TaskFailed(f"{RUN}/work/{width + 1}", 0, "ValueError: bad", None))
    printer.finish(ev.RunFinished("F", "1", "failed", "F/1/work/51: ValueError: bad"))


def test_wide_foreach_on_a_terminal_shows_a_progress_bar() -> None:
    out, err = io.StringIO(), io.StringIO()
    printer = RunPrinter(out=out, err=err, live=True)
    feed(printer, 50)
    text = out.getvalue()
    assert "49/50" in text and "1 failed" in text
    assert "1/work/2" in text and "hello from 2" in text  # task output still shows
    assert "Task failed: ValueError: bad" in text
    assert text.count("Task is starting") == 0  # no line per task


def test_without_a_terminal_every_task_gets_its_lines() -> None:
    out, err = io.StringIO(), io.StringIO()
    feed(RunPrinter(out=out, err=err, live=False), 50)
    text = out.getvalue()
    assert text.count("Task is starting") == 50 and text.count("Task finished") == 49
    assert "\033[" not in text  # no colour codes in a log file


def test_quiet_prints_only_output_and_failures() -> None:
    out, err = io.StringIO(), io.StringIO()
    feed(RunPrinter(quiet=True, out=out, err=err, live=False), 30)
    text = out.getvalue()
    assert "Task is starting" not in text and "Workflow" not in text
    assert "hello from 2" in text and "Task failed" in text
