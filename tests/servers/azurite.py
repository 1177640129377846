"""Pytest fixtures for the Azure datastore: Azurite (the Azure Blob emulator) on 127.0.0.1.

`azurite` starts one Azurite blob server for the session from the project's own npm install
(`npm ci --prefix tests/servers`), on a free port, in memory, and stops it at the end; without node or
that install it fails, saying what to run, rather than skipping. `azure_datastore` gives each test a
fresh container and the environment that points the Azure store at it. Register with
`pytest_plugins = ["servers.azurite"]`.
"""

from __future__ import annotations

import asyncio
import shutil
import socket
import subprocess
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

SERVERS = Path(__file__).resolve().parent
AZURITE_BLOB = SERVERS / "node_modules" / ".bin" / "azurite-blob"
INSTALL_HINT = (
    "run `npm ci --prefix tests/servers` (needs Node.js) to install Azurite for the Azure tests"
)

# Azurite's well-known development account (public, documented by Microsoft; not a secret).
ACCOUNT = "devstoreaccount1"
ACCOUNT_KEY = "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw=="


@dataclass(frozen=True)
class Azurite:
    port: int

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self.port}/{ACCOUNT}"

    def connection_string(self, account_key: str = ACCOUNT_KEY) -> str:
        return (
            f"DefaultEndpointsProtocol=http;AccountName={ACCOUNT};AccountKey={account_key};"
            f"BlobEndpoint={self.endpoint};"
        )


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _answers(endpoint: str) -> bool:
    try:
        urllib.request.urlopen(f"{endpoint}?comp=list", timeout=1).close()
    except urllib.error.HTTPError:
        return True  # 403 without credentials: it is serving
    except OSError:
        return False
    return True


def _start(workspace: Path) -> tuple[subprocess.Popen[bytes], Azurite]:
    node = shutil.which("node")
    if node is None:
        pytest.fail(f"node is not on PATH: {INSTALL_HINT}", pytrace=False)
    if not AZURITE_BLOB.exists():
        pytest.fail(f"{AZURITE_BLOB} is missing: {INSTALL_HINT}", pytrace=False)
    log = workspace / "azurite.log"
    for _ in range(3):  # a free port can be taken between choosing it and binding it
        server = Azurite(free_port())
        with open(log, "wb") as out:
            proc = subprocess.Popen(
                [node, str(AZURITE_BLOB.resolve()), "--blobHost", "127.0.0.1",
                 "--blobPort", str(server.port),
                 "--inMemoryPersistence", "--skipApiVersionCheck", "--disableTelemetry", "--silent"],
                stdout=out, stderr=subprocess.STDOUT, cwd=workspace,
            )  # fmt: skip
        deadline = time.monotonic() + 30
        while proc.poll() is None and time.monotonic() < deadline:
            if _answers(server.endpoint):
                return proc, server
            time.sleep(0.1)
        _stop(proc)
    pytest.fail(f"Azurite did not start; its output:\n{log.read_text()}", pytrace=False)


def _stop(proc: subprocess.Popen[bytes]) -> None:
    proc.terminate()
    try:
        proc.wait(timeout=10)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


@pytest.fixture(scope="session")
def azurite(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Azurite]:
    """One Azurite blob server for the test session."""
    proc, server = _start(tmp_path_factory.mktemp("azurite"))
    try:
        yield server
    finally:
        _stop(proc)


async def _container(connection_string: str, name: str, create: bool) -> None:
    from azure.storage.blob.aio import BlobServiceClient

    async with BlobServiceClient.from_connection_string(connection_string) as service:
        if create:
            await service.create_container(name)
        else:
            await service.delete_container(name)


@pytest.fixture
def azure_datastore(azurite: Azurite, monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[str, str]]:
    """("azure", "az://<fresh container>/prefix"), with AZURE_STORAGE_CONNECTION_STRING (and
    AFLOW_DATASTORE_SYSROOT_AZURE) set for this test and the processes it starts."""
    container = f"aflow-{uuid.uuid4().hex[:16]}"
    connection_string = azurite.connection_string()
    asyncio.run(_container(connection_string, container, create=True))
    root = f"az://{container}/prefix"
    monkeypatch.setenv("AZURE_STORAGE_CONNECTION_STRING", connection_string)
    monkeypatch.setenv("AFLOW_DATASTORE_SYSROOT_AZURE", root)
    monkeypatch.delenv("AFLOW_AZURE_ACCOUNT_URL", raising=False)
    yield "azure", root
    asyncio.run(_container(connection_string, container, create=False))  # frees Azurite's memory
