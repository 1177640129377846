"""The store never serves wrong data: damaged blobs, items and records are detected, named, and
not deduplicated against (issue 14); `aflow verify` finds and quarantines them."""

from __future__ import annotations

import contextlib
import hashlib
import os
from pathlib import Path

import anyio
import pytest
from conftest import FLOWS, run_cli
from integrity_flow import IntegrityFlow

import aflow
from aflow.exception import DamagedData

FLOW_FILE = str(FLOWS / "integrity_flow.py")
PAYLOAD_SUM = sum(range(2000))
TOTAL = 3 * PAYLOAD_SUM + 3 * len("item-0")


def run(**options: object) -> aflow.Run:
    return anyio.run(lambda: aflow.run_flow(IntegrityFlow, **options))


def blob_path(root: Path, run: aflow.Run, step: str, name: str) -> Path:
    sha = run[step].task[name].sha
    return root / "IntegrityFlow" / "data" / sha[:2] / sha


def flip(path: Path, at: int | None = None) -> None:
    data = bytearray(path.read_bytes())
    at = len(data) // 2 if at is None else at
    data[at] ^= 0x20
    path.write_bytes(bytes(data))


def truncate(path: Path, keep: float = 0.5) -> None:
    data = path.read_bytes()
    path.write_bytes(data[: int(len(data) * keep)])


def test_a_fresh_run_does_not_deduplicate_against_a_damaged_blob(store_root: Path) -> None:
    first = run()
    path = blob_path(store_root, first, "start", "payload")
    good = path.read_bytes()
    flip(path)
    second = run()  # produces the same payload: before, it trusted the damaged file and read it
    assert second.successful
    assert second["join"].task.data.total == TOTAL
    assert second["end"].task.data.payload == list(range(2000))
    assert path.read_bytes() == good  # the known-good bytes replaced the damaged copy
    assert first["start"].task.data.payload == list(range(2000))  # the old run reads right again


@pytest.mark.parametrize("damage", [flip, truncate])
def test_a_damaged_blob_is_named_with_its_artifact_task_and_path(store_root: Path, damage) -> None:
    done = run()
    path = blob_path(store_root, done, "start", "payload")
    damage(path)
    with pytest.raises(DamagedData) as caught:
        _ = done["start"].task.data.payload
    message = str(caught.value)
    assert "'payload'" in message and f"{done.pathspec}/start/" in message and str(path) in message
    assert caught.value.path == str(path)
    # A task that loads it fails with the same names instead of unpickling bad bytes.
    resumed = run_cli("resume", FLOW_FILE, "work")
    assert resumed.returncode == 1
    assert "artifact 'payload'" in resumed.stderr and str(path) in resumed.stderr, resumed.stderr
    assert "pickle" not in resumed.stderr


def test_a_damaged_foreach_item_is_detected_by_the_child_that_reads_it(store_root: Path) -> None:
    done = run()
    import msgpack

    start_dir = next((store_root / "IntegrityFlow" / done.id / "start").iterdir())
    digest = msgpack.unpackb((start_dir / "0.mpk").read_bytes())["split_digest"]
    path = store_root / "IntegrityFlow" / "data" / digest[:2] / digest
    data = path.read_bytes()
    at = data.index(b"item-1") + 5
    flip(path, at)
    resumed = run_cli("resume", FLOW_FILE, "work")
    assert resumed.returncode == 1
    assert "foreach item 1 of 3" in resumed.stderr and str(path) in resumed.stderr, resumed.stderr


def test_blobs_read_back_by_the_client_are_checked_cheaply_enough() -> None:
    from aflow.stores.integrity import blob_problem

    blob = bytes(range(256)) * 4096
    digest = hashlib.sha256(blob).hexdigest()
    assert blob_problem(blob, digest, len(blob)) is None
    assert "bytes" in (blob_problem(blob[:-1], digest, len(blob)) or "")
    changed = bytearray(blob)
    changed[7] ^= 1
    assert "SHA-256" in (blob_problem(changed, digest, len(blob)) or "")


def test_verify_reports_and_quarantines_damage(store_root: Path) -> None:
    done = run()
    clean = run_cli("verify", "IntegrityFlow")
    assert clean.returncode == 0 and "all intact" in clean.stdout, clean.stdout + clean.stderr
    blob = blob_path(store_root, done, "start", "payload")
    flip(blob)
    work_dir = next((store_root / "IntegrityFlow" / done.id / "work").iterdir())
    (work_dir / "0.mpk").write_bytes(b"")
    run_record = store_root / "IntegrityFlow" / done.id / "run.mpk"
    truncate(run_record, 0.9)
    found = run_cli("verify", f"IntegrityFlow/{done.id}")
    assert found.returncode == 1
    out = found.stdout
    assert f"damaged: {blob}: its content does not match" in out and "artifact 'payload'" in out
    assert f"damaged: {work_dir / '0.mpk'}: empty" in out
    assert f"damaged: {run_record}" in out
    assert "3 damaged or missing" in out, out
    moved = run_cli("verify", FLOW_FILE, "--quarantine")
    assert moved.returncode == 1 and moved.stdout.count("moved to") == 3, moved.stdout
    assert not blob.exists() and not run_record.exists()
    assert len(list((store_root / ".quarantine").rglob("*.mpk"))) == 2
    after = run_cli("verify", "IntegrityFlow")
    # What was damaged is gone: what named the blob now reports it missing, nothing is damaged.
    assert "damaged:" not in after.stdout and f"missing: {blob}" in after.stdout, after.stdout


def two_runs(root: Path) -> tuple[aflow.Run, aflow.Run]:
    return run(), run()


def test_a_damaged_run_record_is_skipped_and_named_by_every_listing(store_root: Path) -> None:
    from aflow.exception import DamagedRecordWarning
    from aflow.stores.local import LocalStore
    from aflow.ui.reader import RunsReader

    older, newer = two_runs(store_root)
    damaged = store_root / "IntegrityFlow" / newer.id / "run.mpk"
    damaged.write_bytes(b"")  # `: > run.mpk`, as a power loss can leave it
    listed = run_cli("list", "runs", "IntegrityFlow")
    assert listed.returncode == 0, listed.stderr
    assert older.id in listed.stdout and newer.id not in listed.stdout
    assert f"skipped a damaged record: {damaged} (empty)" in listed.stderr
    everything = run_cli("list", "runs")
    assert everything.returncode == 0 and str(damaged) in everything.stderr
    with pytest.warns(DamagedRecordWarning, match=str(damaged)):
        runs = list(aflow.Flow("IntegrityFlow").runs())
    assert [r.id for r in runs] == [older.id]
    shown = run_cli("show", "IntegrityFlow", newer.id)
    assert shown.returncode == 1 and "Traceback" not in shown.stderr
    assert str(damaged) in shown.stderr and "aflow verify --quarantine" in shown.stderr
    latest = run_cli("show", "IntegrityFlow", "latest")
    assert latest.returncode == 0 and f"Run IntegrityFlow/{older.id}" in latest.stdout
    with pytest.warns(DamagedRecordWarning):
        page = anyio.run(lambda: RunsReader(LocalStore(store_root)).page(None, 1, 50))
    assert [r.run_id for r in page.rows] == [older.id] and str(damaged) in page.damaged[0]
    resumed = run_cli("resume", FLOW_FILE)  # the newest readable run is the origin
    assert resumed.returncode == 0, resumed.stderr
    assert f"resuming {older.id}" in resumed.stdout and str(damaged) in resumed.stderr


def test_a_damaged_task_record_is_named_and_resume_redoes_the_task(store_root: Path) -> None:
    done = run()
    task_dir = (
        store_root
        / "IntegrityFlow"
        / done.id
        / "work"
        / sorted(p.name for p in (store_root / "IntegrityFlow" / done.id / "work").iterdir())[1]
    )
    record = task_dir / "0.mpk"
    flip(record)
    shown = run_cli("show", "IntegrityFlow", done.id)
    assert shown.returncode == 0, shown.stderr
    assert f"skipped a damaged record: {record}" in shown.stderr
    logs = run_cli("logs", "IntegrityFlow", f"{done.id}/work")
    assert logs.returncode == 0, logs.stderr
    with pytest.raises(DamagedData, match=str(record)):
        _ = aflow.Task(f"IntegrityFlow/{done.id}/work/{task_dir.name}").data.word
    resumed = run_cli("resume", FLOW_FILE, "--origin-run-id", done.id)
    assert resumed.returncode == 0, resumed.stderr
    assert f"warning: redoing a task: the record {record}" in resumed.stderr
    again = aflow.Flow("IntegrityFlow").latest_run
    assert again.id != done.id and again.successful and again.data.total == TOTAL
    works = list(again["work"])
    assert len(works) == 3
    redone = [t for t in works if t.index == 1]
    assert redone and redone[0].data.word == "ITEM-1"


def test_resume_refuses_a_run_that_is_still_going(store_root: Path) -> None:
    from aflow.stores.records import RunRecord

    done = run()
    path = store_root / "IntegrityFlow" / done.id / "run.mpk"
    record = RunRecord.unpack(path.read_bytes())
    record.status, record.finished_at, record.pid = "running", None, os.getpid()
    import time

    record.heartbeat_at = time.time()
    path.write_bytes(record.pack())
    refused = run_cli("resume", FLOW_FILE, "--origin-run-id", done.id)
    assert refused.returncode == 1 and "is still running" in refused.stderr, refused.stderr
    record.pid = 2**22 + 12345  # no such process: the run is dead, resume goes ahead
    path.write_bytes(record.pack())
    assert run_cli("resume", FLOW_FILE, "--origin-run-id", done.id).returncode == 0


@pytest.fixture
def small_disk(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    """A store root on a 1 MiB tmpfs (needs root to mount; skipped where that is not allowed)."""
    import subprocess

    mount = tmp_path / "disk"
    mount.mkdir()
    made = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=1m", "tmpfs", str(mount)], capture_output=True
    )
    if made.returncode != 0:
        pytest.skip(f"cannot mount a small tmpfs here: {made.stderr.decode().strip()}")
    monkeypatch.setenv("AFLOW_DATASTORE_ROOT", str(mount / "store"))
    try:
        yield mount
    finally:
        subprocess.run(["umount", "-l", str(mount)], check=False)


def test_a_full_disk_is_named_with_the_artifact_and_the_store_path(small_disk: Path) -> None:
    failed = run_cli("run", FLOW_FILE, "--big", str(2 << 20))
    assert failed.returncode == 1
    err = failed.stderr
    assert "artifact 'blob' of task IntegrityFlow/" in err and "no space left to write" in err, err
    assert str(small_disk / "store" / "IntegrityFlow" / "data") in err
    # A disk already full when a run starts: one line that says so, and the store stays readable.
    fd = os.open(small_disk / "filler", os.O_WRONLY | os.O_CREAT)
    with contextlib.suppress(OSError):
        while True:
            os.write(fd, bytes(4096))
    os.close(fd)
    runs_before = sorted((small_disk / "store" / "IntegrityFlow").iterdir())
    full = run_cli("run", FLOW_FILE)
    assert sorted((small_disk / "store" / "IntegrityFlow").iterdir()) == runs_before  # no empty folder
    assert full.returncode == 1 and "Traceback" not in full.stderr
    assert "disk is full" in full.stderr and "run.mpk" in full.stderr, full.stderr
    listed = run_cli("list", "runs", "IntegrityFlow")
    assert listed.returncode == 0, listed.stderr
    resumed = run_cli("resume", FLOW_FILE)
    assert "Traceback" not in resumed.stderr and "Unpack" not in resumed.stderr, resumed.stderr


def test_quarantine_then_resume_stores_the_damaged_value_again(store_root: Path) -> None:
    done = run()
    path = blob_path(store_root, done, "start", "payload")
    good = path.read_bytes()
    flip(path)
    assert run_cli("verify", "IntegrityFlow", "--quarantine").returncode == 1
    assert not path.exists()
    resumed = run_cli("resume", FLOW_FILE)
    assert resumed.returncode == 0, resumed.stderr
    assert "redoing task" in resumed.stderr and "artifact 'payload' is missing" in resumed.stderr
    assert path.read_bytes() == good
    assert aflow.Flow("IntegrityFlow").latest_run.data.total == TOTAL
    # The blob is back under its name: the first run, which names it too, reads whole again.
    assert run_cli("verify", "IntegrityFlow").returncode == 0
    assert done["start"].task.data.payload == list(range(2000))


def test_the_ui_names_a_damaged_run_record_instead_of_failing(store_root: Path, tmp_path: Path) -> None:
    import re
    import subprocess
    import sys
    import time
    import urllib.error
    import urllib.request

    older, newer = two_runs(store_root)
    damaged = store_root / "IntegrityFlow" / newer.id / "run.mpk"
    truncate(damaged)
    log = tmp_path / "ui.log"
    with log.open("wb") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "aflow", "ui", "--port", "0"], stdout=out, stderr=subprocess.STDOUT
        )
    try:
        deadline = time.monotonic() + 60
        while not (found := re.search(r"http://127\.0\.0\.1:\d+", log.read_text())):
            assert proc.poll() is None and time.monotonic() < deadline, log.read_text()
            time.sleep(0.05)
        url = found.group(0)
        with urllib.request.urlopen(url + "/", timeout=30) as home:
            assert home.status == 200 and older.id in home.read().decode()
        with pytest.raises(urllib.error.HTTPError) as page:
            urllib.request.urlopen(f"{url}/run/IntegrityFlow/{newer.id}", timeout=30)
        assert page.value.code == 404 and str(damaged) in page.value.read().decode()
    finally:
        proc.terminate()
        proc.wait(20)
