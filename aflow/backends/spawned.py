"""The local backend's fallback: each task a fresh `python -m aflow.engine.task_runtime` process.

Used where fork is unavailable, or with AFLOW_LOCAL_SPAWN=1. Slower to start (a new interpreter per
task) but needs nothing warm. The task's output comes back over its own pipes, line by line.
"""

from __future__ import annotations

import dataclasses
import os
import signal
import sys
import sysconfig
from collections.abc import AsyncIterable

import anyio

from aflow.backends.base import LogSink
from aflow.backends.processes import TERM_GRACE, LineSplitter, kill_group, task_exit
from aflow.engine.wire import TaskExit, TaskSpec


async def run_spawned(task: TaskSpec, logs: LogSink) -> TaskExit:
    python, env = sys.executable, None
    if task.environment:  # @pypi/@conda: its own interpreter, with aflow (only) on its path
        from aflow.engine.environments import aflow_path  # only such tasks pay for it

        python = task.environment["python"]
        env = {**os.environ, "PYTHONPATH": aflow_path(), "PYTHONNOUSERSITE": "1"}
        # The scheduler's packages must not shadow the environment's.
        paths = [p for p in task.sys_path if not _library_path(p)]
        task = dataclasses.replace(task, sys_path=paths)
    proc = await anyio.open_process(
        [python, "-m", "aflow.engine.task_runtime"], start_new_session=True, env=env
    )
    try:
        assert proc.stdin and proc.stdout and proc.stderr
        await proc.stdin.send(task.pack())
        await proc.stdin.aclose()
        async with anyio.create_task_group() as tg:
            tg.start_soon(_pump, proc.stdout, "stdout", logs)
            tg.start_soon(_pump, proc.stderr, "stderr", logs)
            code = await proc.wait()
            kill_group(proc.pid, signal.SIGKILL)  # what the task left running would hold the pipes
    except BaseException:
        with anyio.CancelScope(shield=True):
            kill_group(proc.pid, signal.SIGTERM)
            with anyio.move_on_after(TERM_GRACE):
                await proc.wait()
            if proc.returncode is None:
                kill_group(proc.pid, signal.SIGKILL)
                await proc.wait()
        raise
    return task_exit(code)


def _library_path(entry: str) -> bool:
    """Whether a sys.path entry is this interpreter's standard library or installed packages (a
    flow's own folder, even one under /usr, is not)."""
    real = os.path.realpath(entry or ".")
    paths = sysconfig.get_paths()
    roots = {os.path.realpath(paths[k]) for k in ("stdlib", "platstdlib", "purelib", "platlib")}
    return (
        real.endswith(("site-packages", "dist-packages", ".zip"))
        or any((real + os.sep).startswith(root + os.sep) for root in roots)
    )


async def _pump(chunks: AsyncIterable[bytes], stream: str, logs: LogSink) -> None:
    lines = LineSplitter()
    async for chunk in chunks:
        for line in lines.feed(chunk):
            await logs.line(stream, line)
    for line in lines.rest():
        await logs.line(stream, line)
