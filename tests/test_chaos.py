"""Chaos: stores damaged at random and runs killed at random, then read and resumed by everything
that reads a store. Nothing may crash and nothing may return wrong data (issue 14).

Each case is seeded by its number, so a failure names the case that reproduces it. One round is
CI-sized (24 damaged stores, 6 killed runs); `pytest tests/test_chaos.py --chaos-rounds 20` soaks.
"""

from __future__ import annotations

import os
import random
import shutil
import signal
import subprocess
import sys
import time
import warnings
from pathlib import Path
from typing import Any

import anyio
import pytest
from conftest import FLOWS, run_cli
from integrity_flow import IntegrityFlow
from typer.testing import CliRunner

import aflow
from aflow.cli.app import app
from aflow.client import core
from aflow.exception import AflowException
from aflow.stores.local import LocalStore
from aflow.ui.reader import ReadOnlyStore, RunReader, RunsReader, read_task

FLOW_FILE = str(FLOWS / "integrity_flow.py")
DAMAGE_CASES = 24
KILL_CASES = 6
TOTAL = 3 * sum(range(2000)) + 3 * len("item-0")


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    rounds = metafunc.config.getoption("chaos_rounds")
    if "damage_case" in metafunc.fixturenames:
        metafunc.parametrize("damage_case", range(DAMAGE_CASES * rounds))
    if "kill_case" in metafunc.fixturenames:
        metafunc.parametrize("kill_case", range(KILL_CASES * rounds))


# -- damaged stores ---------------------------------------------------------------------------------


def _read_everything(expect_complete: bool = False) -> dict[tuple[str, ...], Any]:
    """Every artifact of every task of every run the client lists: a value, or the AflowException
    that said why it could not be read. Anything else raised is a crash and fails the test."""
    seen: dict[tuple[str, ...], Any] = {}
    core.namespace(None)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", core.DamagedRecordWarning)
        for run in aflow.Flow("IntegrityFlow").runs():
            try:
                steps = list(run)
            except AflowException as e:
                seen[(run.id,)] = e
                continue
            for step in steps:
                for task in step:
                    key = (run.id, step.id, task.id)
                    try:
                        names = [a.id for a in task]
                        _ = task.stdout, task.stderr
                    except AflowException as e:
                        seen[key] = e
                        continue
                    for name in names:
                        try:
                            seen[(*key, name)] = task[name].data
                        except AflowException as e:
                            seen[(*key, name)] = e
    if expect_complete:
        bad = {k: v for k, v in seen.items() if isinstance(v, Exception)}
        assert not bad, bad
    return seen


@pytest.fixture(scope="module")
def reference(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict, list[str]]:
    """Two runs of IntegrityFlow and everything the client reads from them, intact."""
    root = tmp_path_factory.mktemp("chaos") / "store"
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("AFLOW_DATASTORE_ROOT", str(root))
        ids = [anyio.run(lambda: aflow.run_flow(IntegrityFlow)).id for _ in range(2)]
        values = _read_everything(expect_complete=True)
    return root, values, ids


def _damage(root: Path, rng: random.Random) -> tuple[Path, str]:
    files = sorted(p for p in root.rglob("*") if p.is_file())
    target = rng.choice(files)
    how = rng.choice(["truncate", "flip", "remove"])
    data = target.read_bytes()
    if how == "remove" or not data:
        target.unlink()
        how = "remove"
    elif how == "truncate":
        target.write_bytes(data[: rng.randrange(len(data))])
    else:
        changed = bytearray(data)
        changed[rng.randrange(len(data))] ^= rng.randrange(1, 256)
        target.write_bytes(bytes(changed))
    return target, how


def _cli(*args: str) -> Any:
    result = CliRunner().invoke(app, list(args))
    if result.exception is not None and not isinstance(result.exception, SystemExit):
        raise AssertionError(f"aflow {' '.join(args)} crashed") from result.exception
    assert result.exit_code in (0, 1), (args, result.output)
    assert "Traceback" not in result.output, result.output
    return result


def _ui_reads(root: Path) -> None:
    store = ReadOnlyStore(LocalStore(root))

    async def main() -> None:
        page = await RunsReader(store).page(None, 1, 50)
        for row in page.rows:
            try:
                snap = await RunReader(store, row.flow, row.run_id).snapshot()
            except AflowException:
                continue
            for states in snap.steps.values():
                for state in states:
                    try:
                        await read_task(store, row.flow, row.run_id, state.step, state.task_id)
                    except AflowException:
                        pass

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", core.DamagedRecordWarning)
        anyio.run(main)


def test_a_randomly_damaged_store_is_read_safely_by_every_reader(
    damage_case: int,
    reference: tuple[Path, dict, list[str]],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    source, expected, run_ids = reference
    root = tmp_path / "store"
    shutil.copytree(source, root)
    monkeypatch.setenv("AFLOW_DATASTORE_ROOT", str(root))
    rng = random.Random(damage_case)
    target, how = _damage(root, rng)
    where = f"case {damage_case}: {how} {target.relative_to(root)}"

    # The client: every value it returns is the value that was stored.
    for key, value in _read_everything().items():
        if not isinstance(value, Exception):
            assert key in expected and value == expected[key], f"{where}: wrong data at {key}"

    # The commands: none crashes; verify finds a damaged record or blob.
    _cli("list", "runs")
    for run_id in run_ids:
        _cli("show", "IntegrityFlow", run_id)
        _cli("logs", "IntegrityFlow", f"{run_id}/work")
    verified = _cli("verify", "IntegrityFlow")
    in_data_or_record = "/data/" in str(target) or target.suffix == ".mpk"
    if how != "remove" and in_data_or_record:
        assert verified.exit_code == 1 and str(target) in verified.output, f"{where}\n{verified.output}"
    _ui_reads(root)

    # A resume (every third case: it runs a flow) ends right or says why it cannot.
    if damage_case % 3 == 0:
        try:
            resumed = anyio.run(lambda: aflow.resume_flow(IntegrityFlow))
        except AflowException:
            return
        if resumed.successful:
            assert resumed.data.total == TOTAL, where


# -- killed runs ------------------------------------------------------------------------------------


def _children(pid: int) -> list[int]:
    found = []
    for name in os.listdir("/proc"):
        if name.isdigit():
            try:
                stat = Path(f"/proc/{name}/stat").read_text()
            except OSError:
                continue
            if int(stat.rsplit(")", 1)[1].split()[1]) == pid:
                found.append(int(name))
    return found


def _cmdline(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()
    except OSError:
        return ""


def _victim(scheduler: int, target: str) -> int | None:
    if target == "scheduler":
        return scheduler
    parents = [p for p in _children(scheduler) if "warm_parent" in _cmdline(p)]
    if not parents:
        return None
    if target == "warm parent":
        return parents[0]
    tasks = _children(parents[0])
    return tasks[0] if tasks else None


def test_a_run_killed_at_a_random_moment_resumes_to_the_same_result(
    kill_case: int, store_root: Path
) -> None:
    rng = random.Random(1000 + kill_case)
    target = ("scheduler", "warm parent", "task")[kill_case % 3]
    proc = subprocess.Popen(
        [sys.executable, "-m", "aflow", "run", FLOW_FILE, "--width", "4", "--nap", "0.4"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        env=os.environ.copy(),
    )
    when = time.monotonic() + rng.uniform(0.3, 4.0)
    killed = None
    while proc.poll() is None and killed is None:
        if time.monotonic() >= when and (victim := _victim(proc.pid, target)) is not None:
            os.kill(victim, signal.SIGKILL)
            killed = victim
        time.sleep(0.02)
    proc.wait(timeout=120)
    where = f"case {kill_case}: SIGKILL to the {target} ({'sent' if killed else 'the run ended first'})"

    for _ in range(3):  # a resume killed nothing, so it ends the run; a fresh one if none started
        runs = [p for p in (store_root / "IntegrityFlow").glob("*/run.mpk")]
        again = run_cli("resume", FLOW_FILE) if runs else run_cli("run", FLOW_FILE, "--width", "4")
        assert "Traceback" not in again.stderr, f"{where}\n{again.stderr}"
        if again.returncode == 0:
            break
    else:
        raise AssertionError(f"{where}: no resume finished the run\n{again.stderr}")
    done = aflow.Flow("IntegrityFlow").latest_successful_run
    assert done is not None and done.data.total == 4 * sum(range(2000)) + 4 * len("item-0"), where
    assert done.data.words == sorted(f"ITEM-{i}" for i in range(4)), where
    verified = run_cli("verify", "IntegrityFlow")
    assert verified.returncode == 0, f"{where}\n{verified.stdout}"
