"""`parallel_map` and `parallel_imap_unordered`: Metaflow's helpers that run a function over items
in forked processes (`from metaflow import parallel_map`).

Each item runs in a child forked from the caller, so the function may be a lambda or a closure
and sees everything the step has loaded; at most `max_parallel` (default: the CPU count) children
run at once. A child sends its pickled result (or its exception) back through a pipe that the
parent reads as it arrives, so nothing is written to disk and no child waits on a full pipe.
"""

from __future__ import annotations

import os
import pickle
import selectors
import sys
import traceback
from collections.abc import Callable, Iterable, Iterator
from itertools import islice
from typing import Any, TypeVar

A = TypeVar("A")
R = TypeVar("R")


class MulticoreException(Exception):
    """A child failed: its exception's type, message and traceback are in the message."""


def _fork(func: Callable[[Any], Any], arg: Any) -> tuple[int, int]:
    read_fd, write_fd = os.pipe()
    sys.stdout.flush()
    sys.stderr.flush()  # or the child prints the parent's buffered output again
    pid = os.fork()
    if pid:
        os.close(write_fd)
        return pid, read_fd
    os.close(read_fd)
    code = 1
    try:
        try:
            payload = pickle.dumps((True, func(arg)), protocol=pickle.HIGHEST_PROTOCOL)
        except BaseException as e:
            detail = "".join(traceback.format_exception(e))
            payload = pickle.dumps((False, f"{type(e).__name__}: {e}\n{detail}"))
        with os.fdopen(write_fd, "wb") as out:
            out.write(payload)
        code = 0
    finally:
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(code)  # no atexit handlers, no finally blocks of the parent's frames


def parallel_imap_unordered(
    func: Callable[[A], R],
    iterable: Iterable[A],
    max_parallel: int | None = None,
    dir: str | None = None,
) -> Iterator[R]:
    """`func(item)` for every item, in forked children; results as they finish. (`dir` is
    accepted for Metaflow's signature: nothing goes to disk here.)"""
    limit = max_parallel or os.cpu_count() or 1
    items = iter(iterable)
    selector = selectors.DefaultSelector()
    buffers: dict[int, bytearray] = {}

    def start(arg: Any) -> None:
        pid, fd = _fork(func, arg)
        buffers[fd] = bytearray()
        selector.register(fd, selectors.EVENT_READ, pid)

    try:
        for arg in islice(items, limit):
            start(arg)
        while buffers:
            for key, _ in selector.select():
                fd, pid = key.fd, key.data
                chunk = os.read(fd, 1 << 20)
                if chunk:
                    buffers[fd] += chunk
                    continue
                selector.unregister(fd)
                os.close(fd)
                data = bytes(buffers.pop(fd))
                _, status = os.waitpid(pid, 0)
                if not data or os.waitstatus_to_exitcode(status) != 0:
                    raise MulticoreException(
                        f"a parallel_map child (pid {pid}) died without a result "
                        f"(exit status {os.waitstatus_to_exitcode(status)})"
                    )
                ok, value = pickle.loads(data)
                if not ok:
                    raise MulticoreException(f"a parallel_map child failed: {value}")
                yield value
                for arg in islice(items, 1):
                    start(arg)
    finally:
        for key in list(selector.get_map().values()):  # stopped early: end the other children
            selector.unregister(key.fd)
            os.close(key.fd)
            try:
                os.kill(key.data, 9)
                os.waitpid(key.data, 0)
            except (ProcessLookupError, ChildProcessError):
                pass
        selector.close()


def parallel_map(
    func: Callable[[A], R],
    iterable: Iterable[A],
    max_parallel: int | None = None,
    dir: str | None = None,
) -> list[R]:
    """`[func(x) for x in iterable]`, computed in up to `max_parallel` forked children."""

    def indexed(pair: tuple[int, A]) -> tuple[int, R]:
        return pair[0], func(pair[1])

    done = parallel_imap_unordered(indexed, enumerate(iterable), max_parallel, dir)
    return [value for _, value in sorted(done, key=lambda pair: pair[0])]
