"""A task's output as its log keeps it: progress frames, colours, and lines too long to keep whole
(issue 14, items 4 and 5)."""

from __future__ import annotations

import time
from pathlib import Path

import anyio
from conftest import FLOWS, run_cli

import aflow
from aflow.backends.lines import LINE_LIMIT, LineSplitter
from aflow.stores.log_format import parse_log


def test_progress_frames_keep_the_last_and_colours_stay() -> None:
    lines = LineSplitter()
    got = lines.feed(b"a\r\nepoch 1\r 10%\r 50%")
    got += lines.feed(b"\r100%\n\x1b[31mred\x1b[0m\n")
    got += lines.feed(b"no newline at the end\r")
    assert got + lines.rest() == ["a", "100%", "\x1b[31mred\x1b[0m", "no newline at the end"]


def test_a_long_line_is_cut_in_linear_time_keeping_head_and_tail() -> None:
    lines = LineSplitter()
    chunk = b"y" * 65536
    began = time.perf_counter()
    assert lines.feed(b"HEAD") == []
    for _ in range(1024):  # 64 MiB in one line: quadratic splitting took minutes
        assert lines.feed(chunk) == []
    (line, short) = lines.feed(b"TAIL\nshort\n")
    assert time.perf_counter() - began < 5
    assert short == "short"
    assert line.startswith("HEAD") and line.endswith("TAIL") and len(line) < LINE_LIMIT + 100
    total = 4 + 1024 * 65536 + 4
    assert f"of this line's {total:,} bytes cut" in line


def test_saved_logs_split_only_at_newlines() -> None:
    data = b"2026-01-01T00:00:00Z stdout a\x0cb\rc\n2026-01-01T00:00:01Z stderr \n"
    assert parse_log(data) == [
        ("2026-01-01T00:00:00Z", "stdout", "a\x0cb\rc"),
        ("2026-01-01T00:00:01Z", "stderr", ""),
    ]


def test_a_task_s_progress_colours_and_huge_line_reach_its_log(store_root: Path) -> None:
    from noisy_output import NoisyOutputFlow

    ticks = 0

    async def main() -> aflow.Run:
        nonlocal ticks
        async with anyio.create_task_group() as tg:

            async def ticker() -> None:
                nonlocal ticks
                while True:
                    await anyio.sleep(0.05)
                    ticks += 1

            tg.start_soon(ticker)
            run = await aflow.run_flow(NoisyOutputFlow)
            tg.cancel_scope.cancel()
        return run

    began = time.monotonic()
    run = anyio.run(main)
    assert run.successful
    assert ticks > 0.25 * (time.monotonic() - began) / 0.05  # the loop kept turning
    out = run["start"].task.stdout.splitlines()
    assert out[0] == "training: 100%|##########|"
    assert out[1] == "\x1b[32mgreen\x1b[0m and plain"
    assert out[2].startswith("head-xxx") and out[2].endswith("xxx-tail") and "bytes cut" in out[2]
    assert out[3] == "after the long line" and len(out) == 4
    shown = run_cli("logs", str(FLOWS / "noisy_output.py"), f"{run.id}/start")
    assert shown.returncode == 0 and "\x1b[32mgreen\x1b[0m" in shown.stdout
