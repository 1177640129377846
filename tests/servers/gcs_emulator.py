"""Pytest fixtures for a Google Cloud Storage emulator (`gcp-storage-emulator`) on 127.0.0.1.

`gcs_emulator` starts one in-memory emulator for the test session on a free port, waits until it
answers and stops it at the end. `gcs_datastore` gives each test a fresh bucket, points
STORAGE_EMULATOR_HOST at the emulator (clients then need no credentials) and yields
("gs", "gs://<bucket>/prefix"). This module only manages the server: it never imports aflow.
"""

from __future__ import annotations

import json
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Iterator

import pytest


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


# `gcp-storage-emulator start ...`, with one change: the emulator is a single-threaded
# http.server.HTTPServer whose listen backlog is 5, so a client opening many connections at once
# (100 concurrent small reads) has connections dropped and waits out TCP SYN retries (seconds each,
# minutes in all). A deeper backlog only lets them queue; requests are still served one at a time.
_LAUNCH = (
    "import sys, http.server\n"
    "http.server.HTTPServer.request_queue_size = 1024\n"
    "from gcp_storage_emulator.__main__ import main\n"
    "sys.argv[0] = 'gcp-storage-emulator'\n"
    "main()\n"
)


def _command(port: int) -> list[str]:
    args = ["start", "-H", "127.0.0.1", "--port", str(port), "--in-memory", "-q"]
    return [sys.executable, "-c", _LAUNCH, *args]


def _answers(url: str) -> bool:
    try:
        with urllib.request.urlopen(f"{url}/storage/v1/b?project=test", timeout=1) as r:
            return r.status == 200
    except (OSError, urllib.error.URLError):
        return False


@pytest.fixture(scope="session")
def gcs_emulator() -> Iterator[str]:
    """The base URL (http://127.0.0.1:PORT) of a running in-memory GCS emulator."""
    port = _free_port()
    url = f"http://127.0.0.1:{port}"
    proc = subprocess.Popen(
        _command(port), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, start_new_session=True
    )
    try:
        deadline = time.monotonic() + 30
        while not _answers(url):
            if proc.poll() is not None:
                err = proc.stderr.read().decode(errors="replace") if proc.stderr else ""
                pytest.fail(f"gcp-storage-emulator exited with {proc.returncode}: {err[-2000:]}")
            if time.monotonic() > deadline:
                pytest.fail(f"gcp-storage-emulator did not answer on {url} within 30 s")
            time.sleep(0.1)
        yield url
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        if proc.stderr:
            proc.stderr.close()


def create_bucket(emulator: str, name: str) -> None:
    """Create bucket `name` on the emulator (an error if it exists)."""
    request = urllib.request.Request(
        f"{emulator}/storage/v1/b?project=test",
        data=json.dumps({"name": name}).encode(),
        headers={"Content-Type": "application/json"},
        method="POST",
    )
    with urllib.request.urlopen(request, timeout=10) as r:
        assert r.status == 200, r.status


@pytest.fixture
def gcs_datastore(gcs_emulator: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[str, str]]:
    """("gs", "gs://<fresh bucket>/prefix"), with STORAGE_EMULATOR_HOST set for this test."""
    bucket = f"aflow-{uuid.uuid4().hex[:16]}"
    create_bucket(gcs_emulator, bucket)
    monkeypatch.setenv("STORAGE_EMULATOR_HOST", gcs_emulator)
    monkeypatch.delenv("AFLOW_DATASTORE_SYSROOT_GS", raising=False)
    yield "gs", f"gs://{bucket}/prefix"


__all__ = ["create_bucket", "gcs_datastore", "gcs_emulator"]
