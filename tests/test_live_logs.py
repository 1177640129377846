"""A running task's output is saved as it goes (every few seconds), so it can be tailed."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import anyio

from aflow import start_flow
from aflow.client.core import AsyncTask
from aflow.engine.events import OutputLine
from aflow.engine.flow_loader import load_flow_file
from aflow.stores.factory import open_store

FLOW = Path(__file__).parent / "flows" / "slow_printer.py"


def test_a_running_tasks_log_is_saved_before_it_ends(tmp_path):
    flow_cls = load_flow_file(str(FLOW))
    root = str(tmp_path / "store")

    async def main() -> str:
        async with start_flow(flow_cls, datastore_root=root) as running:
            async for event in running.events():
                if isinstance(event, OutputLine) and event.line == "first line":
                    break
            await anyio.sleep(3)  # more than one flush interval; the step sleeps 6 s
            store = open_store("local", root)
            task = AsyncTask(store, "SlowPrinterFlow", running.run_id, "start", "1")
            lines = [ln.text for ln in await task.at_attempt(0).log("stdout")]
            async for _ in running.events():
                pass
        return " | ".join(lines)

    seen = anyio.run(main)
    assert "first line" in seen and "last line" not in seen


def test_logs_follow_prints_lines_while_the_task_runs(tmp_path):
    root = str(tmp_path / "store")
    ids = tmp_path / "run_id"
    run = subprocess.Popen(
        [sys.executable, str(FLOW), "run", "--datastore-root", root, "--run-id-file", str(ids)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        while not ids.exists() or not ids.read_text().strip():
            time.sleep(0.1)
        follow = subprocess.Popen(
            [sys.executable, "-m", "aflow", "logs", str(FLOW), f"{ids.read_text().strip()}/start",
             "--follow", "--datastore-root", root],
            stdout=subprocess.PIPE,
            text=True,
        )  # fmt: skip
        assert follow.stdout is not None
        first = follow.stdout.readline()
        got_first_at = time.monotonic()
        assert "first line" in first
        rest = follow.stdout.read()
        follow.wait(timeout=30)
        assert "last line" in rest
        assert run.wait(timeout=30) == 0
        assert time.monotonic() - got_first_at > 2  # the first line came while the step slept
    finally:
        run.kill()
