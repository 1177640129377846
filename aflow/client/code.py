"""`Run.code`: the flow file a run ran, kept with the run (Metaflow's MetaflowCode).

The runner stores the flow file's bytes once per content, as a blob, and names it in the run
record (`code`); this reads it back, and makes the tarball Metaflow's object offers on demand.
"""

from __future__ import annotations

import io
import os
import tarfile
import tempfile
from typing import TYPE_CHECKING, Any

from aflow.stores.artifacts import blob_key

if TYPE_CHECKING:
    from aflow.client.core import AsyncRun


class RunCode:
    """The code of a run: `.flowspec` (the flow file's text), `.path`, `.script_name`, `.info`,
    `.tarball`, `.extract()`."""

    def __init__(self, pathspec: str, info: dict[str, Any], source: bytes) -> None:
        self._pathspec = pathspec
        self._info = info
        self._source = source

    @property
    def path(self) -> str:
        """Where the flow file was when the run started."""
        return str(self._info.get("path", ""))

    @property
    def script_name(self) -> str:
        return os.path.basename(self.path)

    @property
    def info(self) -> dict[str, Any]:
        return dict(self._info)

    @property
    def flowspec(self) -> str:
        return self._source.decode("utf-8", errors="replace")

    @property
    def tarball(self) -> tarfile.TarFile:
        buffer = io.BytesIO()
        with tarfile.open(fileobj=buffer, mode="w:gz") as tar:
            entry = tarfile.TarInfo(self.script_name)
            entry.size = len(self._source)
            tar.addfile(entry, io.BytesIO(self._source))
        buffer.seek(0)
        return tarfile.open(fileobj=buffer, mode="r:gz")

    def extract(self) -> tempfile.TemporaryDirectory[str]:
        """The code in a temporary folder (deleted when the returned object is cleaned up)."""
        folder = tempfile.TemporaryDirectory(prefix="aflow-code-")
        with open(os.path.join(folder.name, self.script_name), "wb") as f:
            f.write(self._source)
        return folder

    def __repr__(self) -> str:
        return f"RunCode({self._pathspec}: {self.script_name})"


async def load_code(run: AsyncRun) -> RunCode | None:
    record = await run.record()
    if not record.code:
        return None
    data = await run.store.get(blob_key(run.flow, record.code["key"]))
    return RunCode(run.pathspec, record.code, bytes(data))
