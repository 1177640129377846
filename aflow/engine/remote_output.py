"""A remote task's output, saved to the datastore by the task itself (in its container).

On a remote platform nobody reads the task's pipes: the runtime captures its own stdout and stderr
(file descriptors 1 and 2, so what subprocesses print is caught too), still passes every byte on
to the container's own output (the platform's log service keeps it), and saves what was printed,
in the task-log format, to `<attempt>.out` beside the task record: as it runs and always at the end.
The scheduler reads that object once when the job ends (see backends/batch.py), so completion never
waits on a rate-limited log API. Saves get rarer as the fan-out grows and as the task ages: a
10,000-way array saving every 2 s would be 5,000 PUTs a second.
"""

from __future__ import annotations

import os
import sys
import threading
import time

from aflow.stores.base import BlockingObjectStore
from aflow.stores.log_format import log_line
from aflow.stores.records import task_prefix

END_STREAM = "aflow-end"  # the last line of a complete output (see close())
MAX_INTERVAL = 300.0  # seconds between saves, for an old task
KEEP_BYTES = 16 << 20  # beyond this only the end is saved (the platform's log has the rest)


def output_key(flow: str, run_id: str, step: str, task_id: str, attempt: int) -> str:
    return f"{task_prefix(flow, run_id, step, task_id)}/{attempt}.out"


def first_interval(fan_out: int) -> float:
    """Seconds before the first save: 2 s alone, N/100 s for an N-way array (at most ~100 PUTs a
    second for the whole array), doubling after each save up to MAX_INTERVAL."""
    return max(2.0, fan_out / 100.0)


class OutputKeeper:
    """Captures fds 1 and 2 until close(); saves to `key` now and then and at close()."""

    def __init__(
        self, store: BlockingObjectStore, key: str, fan_out: int = 1, boot_notes: str | None = None
    ) -> None:
        self.store, self.key = store, key
        self.interval = first_interval(fan_out)
        self._lines: list[bytes] = []
        self._size = 0
        self._dirty = False
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._originals: dict[int, int] = {}
        self._readers: list[threading.Thread] = []
        if boot_notes and os.path.exists(boot_notes):  # what the bootstrap printed before we began
            with open(boot_notes, "rb") as f:
                self._keep("stdout", f.read().splitlines())
        for fd, stream in ((1, "stdout"), (2, "stderr")):
            sys.stdout.flush() if fd == 1 else sys.stderr.flush()
            original = os.dup(fd)
            read_end, write_end = os.pipe()
            os.dup2(write_end, fd)
            os.close(write_end)
            self._originals[fd] = original
            reader = threading.Thread(target=self._pump, args=(read_end, original, stream), daemon=True)
            reader.start()
            self._readers.append(reader)
        self._saver = threading.Thread(target=self._save_now_and_then, daemon=True)
        self._saver.start()

    def _pump(self, read_end: int, original: int, stream: str) -> None:
        pending = b""
        with os.fdopen(read_end, "rb", buffering=0) as pipe:
            while chunk := pipe.read(65536):
                try:
                    os.write(original, chunk)  # the container's own output, as before
                except OSError:
                    pass
                pending += chunk
                *lines, pending = pending.split(b"\n")
                self._keep(stream, lines)
        if pending:
            self._keep(stream, [pending])

    def _keep(self, stream: str, lines: list[bytes]) -> None:
        if not lines:
            return
        now = time.time()
        with self._lock:
            for line in lines:
                entry = log_line(now, stream, line.rstrip(b"\r").decode(errors="replace"))
                self._lines.append(entry)
                self._size += len(entry)
            while self._size > KEEP_BYTES and len(self._lines) > 1:
                self._size -= len(self._lines.pop(0))
            self._dirty = True

    def _save(self) -> None:
        with self._lock:
            if not self._dirty:
                return
            data, self._dirty = b"".join(self._lines), False
        try:
            self.store.put(self.key, [data])
        except Exception as e:  # the next save, or the final one, tries again
            with self._lock:
                self._dirty = True
            os.write(self._originals.get(2, 2), f"[aflow] could not save output: {e}\n".encode())

    def _save_now_and_then(self) -> None:
        interval = self.interval
        while not self._stop.wait(interval):
            self._save()
            interval = min(MAX_INTERVAL, interval * 2)

    def close(self) -> None:
        """Stop capturing, wait for what is in the pipes, save the whole output."""
        sys.stdout.flush()
        sys.stderr.flush()
        for fd, original in self._originals.items():
            os.dup2(original, fd)  # closes our pipe's write end: the reader sees its end
        deadline = time.monotonic() + 5  # a subprocess left running may hold the pipe open
        for reader in self._readers:
            reader.join(max(0.0, deadline - time.monotonic()))
        self._stop.set()
        self._saver.join(5)
        self._keep(END_STREAM, [b""])  # complete: a killed task's output lacks this line
        self._save()
