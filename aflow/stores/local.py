"""The local datastore: the store layout as files under a directory (`.aflow/` by default).

Writes go to a temporary file beside the target and are renamed into place, so a crash at any
moment leaves either the old object or the new one, never half of one. The operations here are
synchronous (what a task process uses); the engine sees them through ThreadedStore, one worker-thread
hop per operation, so the event loop never waits on the disk.
"""

from __future__ import annotations

import itertools
import mmap
import os
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from aflow.stores.base import Buffer, NotFound

if TYPE_CHECKING:
    from aflow.stores.threaded import ThreadedStore


MMAP_THRESHOLD = 1 << 20


def default_local_root() -> str:
    return os.environ.get("AFLOW_DATASTORE_ROOT") or os.path.join(os.getcwd(), ".aflow")


_tmp_ids = itertools.count()


def _create(path: str) -> int:
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL
    try:
        return os.open(path, flags, 0o644)
    except FileNotFoundError:
        pass
    folder = os.path.dirname(path)
    try:
        os.mkdir(folder)  # usually only the task's own folder is new
    except FileNotFoundError:
        os.makedirs(folder, exist_ok=True)
    except FileExistsError:
        pass
    return os.open(path, flags, 0o644)


class LocalFiles:
    """Synchronous file operations on a store root (what the task runtime uses directly)."""

    def __init__(self, root: str | os.PathLike[str]) -> None:
        self.root = Path(root).absolute()
        self.url = str(self.root)

    def _path(self, key: str) -> str:
        return os.path.join(self.url, key)

    def put(self, key: str, parts: Sequence[Buffer]) -> None:
        # Plain os calls, no file objects: a forked task process copies every page it touches,
        # and this runs once or more in every task.
        path = self._path(key)
        tmp = f"{path}.{os.getpid()}.{next(_tmp_ids)}.tmp"
        fd = _create(tmp)
        try:
            for part in parts:
                view = memoryview(part).cast("B")
                while view:
                    view = view[os.write(fd, view) :]
            os.close(fd)
            fd = -1
            os.replace(tmp, path)
        except BaseException:
            if fd >= 0:
                os.close(fd)
            try:
                os.unlink(tmp)
            except OSError:
                pass
            raise

    def get(self, key: str) -> Buffer:
        try:
            fd = os.open(self._path(key), os.O_RDONLY)
        except FileNotFoundError:
            raise NotFound(self._path(key)) from None
        try:
            size = os.fstat(fd).st_size
            if size >= MMAP_THRESHOLD:
                # A private mapping: no copy now, pages come from the page cache as they are
                # read, and writes (an array changed in place) stay in this process.
                return mmap.mmap(fd, size, flags=mmap.MAP_PRIVATE, prot=mmap.PROT_READ | mmap.PROT_WRITE)
            data = bytearray(size)
            got = os.readv(fd, [data])
            while got < size:
                more = os.preadv(fd, [memoryview(data)[got:]], got)
                if not more:
                    return data[:got]
                got += more
            return data
        finally:
            os.close(fd)

    def get_range(self, key: str, start: int, length: int) -> bytes:
        try:
            fd = os.open(self._path(key), os.O_RDONLY)
        except FileNotFoundError:
            raise NotFound(self._path(key)) from None
        try:
            return os.pread(fd, length, start)
        finally:
            os.close(fd)

    def exists(self, key: str) -> bool:
        return os.path.isfile(self._path(key))  # an object, not a folder of them

    def list(self, prefix: str) -> list[str]:
        try:
            names = os.listdir(self._path(prefix))
        except (FileNotFoundError, NotADirectoryError):
            return []
        return sorted(n for n in names if not n.endswith(".tmp"))


def LocalStore(root: str | os.PathLike[str]) -> ThreadedStore:
    """The local datastore as an async ObjectStore."""
    from aflow.stores.threaded import ThreadedStore

    return ThreadedStore(LocalFiles(root))
