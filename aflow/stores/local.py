"""The local datastore: the store layout as files under a directory (`.aflow/` by default).

Writes go to a temporary file beside the target and are renamed into place, so a crash at any
moment leaves either the old object or the new one, never half of one. Each object but a log is
fsynced, then the folder that names it, before `put` returns: since a task record is written after
every blob it names, a task whose record was written is complete after a power loss too.
The operations here are synchronous (what a task process uses); the engine sees them through
ThreadedStore, one worker-thread hop per operation, so the event loop never waits on the disk.

Every key resolves strictly inside the root: a key with a `..`, `.` or empty segment, a backslash or
NUL, or an absolute one is refused, and so is a path whose symbolic links lead outside the root (a
read of one finds nothing; a write raises). Readers such as `aflow ui` unpickle what they read, so
a file beside the store must never be read as if it were in it.
"""

from __future__ import annotations

import contextlib
import errno
import itertools
import mmap
import os
from collections.abc import Sequence
from pathlib import Path

from aflow.exception import DataStoreError
from aflow.stores.base import BlockingStoreBase, Buffer, NotFound
from aflow.stores.settings import StoreSettings
from aflow.stores.threaded import ThreadedStore

MMAP_THRESHOLD = 1 << 20


class OutsideRoot(PermissionError):
    """A key that would lead outside the store's root."""


def default_local_root(settings: StoreSettings | None = None) -> str:
    """AFLOW_DATASTORE_ROOT, else the nearest `.aflow` folder in the current folder or a parent
    (as Metaflow finds `.metaflow`: a notebook in `notebooks/` reads the project's runs), else
    `./.aflow`, created on first write."""
    explicit = (settings or StoreSettings.from_env()).root("local")
    if explicit:
        return explicit
    here = Path.cwd()
    for folder in (here, *here.parents):
        if (folder / ".aflow").is_dir():
            return str(folder / ".aflow")
    return os.path.join(here, ".aflow")


_tmp_ids = itertools.count()


def _create(path: str, made: list[str]) -> int:
    """Open a new file at `path`, creating its folder if need be (appended to `made`)."""
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL
    try:
        return os.open(path, flags, 0o644)
    except FileNotFoundError:
        pass
    _make_folder(os.path.dirname(path), made)
    return os.open(path, flags, 0o644)


def _make_folder(folder: str, made: list[str]) -> None:
    """Create `folder` and any missing parents, each made durable in its parent (fsync), so a
    record written into it later is reachable after a power loss."""
    try:
        os.mkdir(folder)  # usually only the task's own folder is new
    except FileExistsError:
        return
    except FileNotFoundError:
        _make_folder(os.path.dirname(folder), made)
        try:
            os.mkdir(folder)
        except FileExistsError:
            return
    made.append(folder)
    _fsync_folder(os.path.dirname(folder))


def _fsync_folder(folder: str) -> None:
    fd = os.open(folder, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _durable(key: str) -> bool:
    """Every object is fsynced (content, then its name in its folder) before put returns, so a
    task record, written last, is durable with every blob it names; logs are not (a log
    rewritten every few seconds while its task runs is not worth a disk flush each time), nor
    are start markers (a hint for viewers, which the record supersedes)."""
    return not key.endswith((".log", ".start"))


class StoreFull(DataStoreError):
    headline = "the datastore's disk is full"

    def __init__(self, message: str, path: str) -> None:
        self.path = path
        super().__init__(message)


class LocalFiles(BlockingStoreBase):
    """Synchronous file operations on a store root (what the task runtime uses directly)."""

    local = True  # read from this machine's disk: a stored blob is cheap to check (artifacts.put_blob)

    def __init__(self, root: str | os.PathLike[str]) -> None:
        self.root = Path(root).absolute()
        self.url = str(self.root)
        self._real = os.path.realpath(self.url)
        # Folders already seen to resolve inside the root: resolving a path costs a system call
        # per component, and a 1,000-task run page reads thousands of keys in a few folders.
        self._inside: set[str] = set()

    def _path(self, key: str) -> str:
        """The file of `key`, its folder strictly inside the root (OutsideRoot if it would not be).
        The file itself is checked where it is opened (`_open`, `exists`)."""
        if key:
            parts = key.split("/")
            if (
                key.startswith("/")
                or "\\" in key
                or "\x00" in key
                or any(p in ("", ".", "..") for p in parts[:-1])
                or parts[-1] in (".", "..")
            ):
                raise OutsideRoot(f"refused the store key {key!r}: it leads outside {self.url}")
        path = os.path.join(self.url, key)
        self._check(os.path.dirname(path) if key else path, key)
        return path

    def _check(self, path: str, key: str) -> None:
        if path in self._inside:
            return
        if not self._resolves_inside(path):
            raise OutsideRoot(
                f"refused the store key {key!r}: a symbolic link leads it outside {self.url}"
            )
        if len(self._inside) >= 4096:
            self._inside.clear()  # (atomic: worker threads share this)
        self._inside.add(path)

    def _resolves_inside(self, path: str) -> bool:
        real = os.path.realpath(path)
        if real == self._real or real.startswith(self._real + os.sep):
            return True
        self._real = os.path.realpath(self.url)  # the root itself may have become a link since
        return real == self._real or real.startswith(self._real + os.sep)

    def _found(self, key: str) -> str:
        """The file of `key` to read: one outside the root is as good as absent."""
        try:
            return self._path(key)
        except OutsideRoot as e:
            raise NotFound(f"{os.path.join(self.url, key)} ({e})") from None

    def _open(self, key: str) -> tuple[str, int]:
        """`key` opened to read; a link out of the root reads as absent (NotFound)."""
        path = self._found(key)
        try:
            try:
                return path, os.open(path, os.O_RDONLY | os.O_NOFOLLOW)
            except OSError as e:
                if e.errno != errno.ELOOP:
                    raise
            if not self._resolves_inside(path):  # the file is a link: follow it only inside
                raise NotFound(f"{path} (a symbolic link leading outside {self.url}: refused)")
            return path, os.open(path, os.O_RDONLY)
        except (FileNotFoundError, NotADirectoryError):
            raise NotFound(path) from None

    def put(self, key: str, parts: Sequence[Buffer]) -> None:
        # Plain os calls, no file objects: a forked task process copies every page it touches,
        # and this runs once or more in every task.
        path = self._path(key)
        tmp = f"{path}.{os.getpid()}.{next(_tmp_ids)}.tmp"
        durable = _durable(key)
        fd = -1
        made: list[str] = []
        try:
            fd = _create(tmp, made)
            for part in parts:
                view = memoryview(part).cast("B")
                while view:
                    view = view[os.write(fd, view) :]
            if durable:
                os.fdatasync(fd)
            os.close(fd)
            fd = -1
            os.replace(tmp, path)
            if durable:
                _fsync_folder(os.path.dirname(path))
        except BaseException as e:
            if fd >= 0:
                os.close(fd)
            try:
                os.unlink(tmp)
            except OSError:
                pass
            for folder in reversed(made):  # a failed write leaves no empty folder (a run's)
                with contextlib.suppress(OSError):
                    os.rmdir(folder)
            if isinstance(e, OSError) and e.errno in (errno.ENOSPC, errno.EDQUOT):
                size = sum(memoryview(p).nbytes for p in parts)
                raise StoreFull(
                    f"no space left to write {path} ({size:,} bytes) in the store {self.url}: "
                    "free space on that disk, or point --datastore-root (AFLOW_DATASTORE_ROOT) "
                    "at another one",
                    path,
                ) from None
            raise

    def get(self, key: str) -> Buffer:
        _, fd = self._open(key)
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
        _, fd = self._open(key)
        try:
            return os.pread(fd, length, start)
        finally:
            os.close(fd)

    def exists(self, key: str) -> bool:
        try:
            path = self._path(key)
        except OutsideRoot:
            return False
        if os.path.islink(path):
            return self._resolves_inside(path) and os.path.isfile(path)
        return os.path.isfile(path)  # an object, not a folder of them

    def move_aside(self, key: str, to: str) -> str:
        """Rename a (damaged) object to key `to` (`aflow verify --quarantine`); returns its path."""
        target = self._path(to)
        os.makedirs(os.path.dirname(target), exist_ok=True)
        os.replace(self._path(key), target)
        return target

    def list(self, prefix: str) -> list[str]:
        try:
            folder = self._path(prefix.rstrip("/"))
            self._check(folder, prefix)
            names = os.listdir(folder)
        except (FileNotFoundError, NotADirectoryError, OutsideRoot):
            return []
        return sorted(n for n in names if not n.endswith(".tmp"))


class LocalStore(ThreadedStore):
    """The local datastore as an async ObjectStore: LocalFiles' operations on worker threads."""

    def __init__(self, root: str | os.PathLike[str]) -> None:
        super().__init__(LocalFiles(root))
