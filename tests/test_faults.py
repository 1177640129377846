"""Fault paths of `aflow run` (issue 14, item 6): a second Ctrl-C, a closed terminal (SIGHUP)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import msgpack
import pytest
from conftest import FLOWS


def _start(store_root: Path) -> tuple[subprocess.Popen[str], str]:
    proc = subprocess.Popen(
        [sys.executable, "-m", "aflow", "run", str(FLOWS / "slow_printer.py")],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=os.environ.copy(),
    )
    seen = ""
    while "first line" not in seen:
        line = proc.stdout.readline()  # type: ignore[union-attr]
        assert line, f"the run ended early: {proc.stderr.read()}"  # type: ignore[union-attr]
        seen += line
    (run_id,) = [p.name for p in (store_root / "SlowPrinterFlow").iterdir() if p.name.isdigit()]
    return proc, run_id


def _status(store_root: Path, run_id: str) -> str:
    return msgpack.unpackb((store_root / "SlowPrinterFlow" / run_id / "run.mpk").read_bytes())["status"]


@pytest.mark.parametrize(
    ("signals", "code", "said"),
    [
        ([signal.SIGINT, signal.SIGINT], 130, "interrupted"),
        ([signal.SIGHUP], 128 + signal.SIGHUP, None),  # its terminal is gone: it says nothing
        ([signal.SIGTERM, signal.SIGINT], 128 + signal.SIGTERM, "terminated"),
    ],
)
def test_a_stopped_run_is_cancelled_without_a_traceback(
    store_root: Path, signals: list[signal.Signals], code: int, said: str | None
) -> None:
    proc, run_id = _start(store_root)
    for sig in signals:
        proc.send_signal(sig)
        time.sleep(0.05)  # a second signal a fraction of a second after the first
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == code, err
    assert "Traceback" not in err and "KeyboardInterrupt" not in err, err
    if said:
        assert said in err and "recorded as cancelled" in err
    assert _status(store_root, run_id) == "cancelled"
