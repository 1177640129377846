"""The local backend: each task in its own OS process on this machine.

Tasks are forked from a warm parent (see warm_parent.py) that has already imported aflow and the flow
module; every task's output comes back multiplexed on the one socket to it and is forwarded line by
line to the task's LogSink. Cancelling `run` stops the task's whole process group (SIGTERM, then
SIGKILL). Where fork is unavailable, or with AFLOW_LOCAL_SPAWN=1, tasks are fresh interpreters
instead (spawned.py).
"""

from __future__ import annotations

import contextlib
import itertools
import os
import signal
import socket
import subprocess
import sys
from dataclasses import dataclass
from typing import Any

import anyio
import msgpack

from aflow.backends.base import BackendBase, LogSink
from aflow.backends.errors import BackendUnavailable
from aflow.backends.processes import TERM_GRACE, LineSplitter, task_exit
from aflow.backends.spawned import run_spawned
from aflow.backends.warm_messages import Event, Hello, KillTask, Request, RunTask
from aflow.engine.wire import TaskExit, TaskSpec
from aflow.exception import AflowException

_STREAMS = ("stdout", "stderr")
_MESSAGE_MAX = 1 << 20

_prestarted: dict[str, tuple[subprocess.Popen[bytes], socket.socket]] = {}


@dataclass(frozen=True)
class LocalSettings:
    """AFLOW_LOCAL_SPAWN=1: a fresh interpreter per task instead of forking the warm parent (also
    where the platform cannot fork); read when a backend is made or a warm parent prestarted."""

    spawn: bool = False

    @classmethod
    def from_env(cls) -> LocalSettings:
        return cls(spawn=os.environ.get("AFLOW_LOCAL_SPAWN") == "1" or not hasattr(os, "fork"))


def _start_warm_parent(flow_file: str | None) -> tuple[subprocess.Popen[bytes], socket.socket]:
    ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
    args = [sys.executable, "-m", "aflow.backends.warm_parent", str(theirs.fileno())]
    try:
        proc = subprocess.Popen(
            [*args, flow_file] if flow_file else args,
            pass_fds=(theirs.fileno(),),
            stdin=subprocess.DEVNULL,
        )
    finally:
        theirs.close()
    ours.setblocking(False)
    return proc, ours


def prestart(flow_file: str) -> None:
    """Start the warm parent for a flow file now, so it imports the flow while the caller does.

    The next LocalBackend for that file adopts it; one nobody adopts exits when this process does.
    """
    if LocalSettings.from_env().spawn:
        return
    path = os.path.abspath(flow_file)
    if path not in _prestarted:
        _prestarted[path] = _start_warm_parent(path)


def settle_prestarted(flow_file: str, timeout: float = 60.0) -> None:
    """Let a prestarted launcher finish importing the flow file, then exit, unused.

    For a flow whose IncludeFile is read at run start: a file that the flow's module writes when
    imported may be half written while the launcher imports it too. The next LocalBackend starts
    a launcher of its own, after the files were read.
    """
    started = _prestarted.pop(os.path.abspath(flow_file), None)
    if started is None:
        return
    proc, sock = started
    sock.close()  # it reads no hello, so it exits once its import is done
    try:
        proc.wait(timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


class _Task:
    """What the scheduler side knows of one forked task: its log, its line buffers, its exit."""

    def __init__(self, logs: LogSink) -> None:
        self.logs = logs
        self.lines = (LineSplitter(), LineSplitter())
        self.exit: TaskExit | None = None
        self.done = anyio.Event()


class LocalBackend(BackendBase):
    """Each task in an OS process of this machine: forked from a warm parent that has imported the
    flow (started on entry, stopped on exit), or a fresh interpreter with AFLOW_LOCAL_SPAWN=1."""

    name = "local"

    def __init__(
        self,
        name: str,
        module: str,
        file: str,
        sys_path: list[str],
        datastore: str,
        store_root: str,
        spawn: bool | None = None,
    ) -> None:
        self.hello = Hello(
            name=name,
            module=module,
            file=file,
            sys_path=sys_path,
            datastore=datastore,
            store_root=store_root,
        )
        self.spawn = LocalSettings.from_env().spawn if spawn is None else spawn
        self._sock: socket.socket | None = None
        self._pid: int | None = None
        self._tasks: dict[int, _Task] = {}
        self._ids = itertools.count()
        self._send_lock = anyio.Lock()
        self._buffer = bytearray(_MESSAGE_MAX)

    # -- lifetime ----------------------------------------------------------------------------

    async def _start(self, stack: contextlib.AsyncExitStack) -> None:
        """Start (or adopt) the warm parent and wait until it has imported the flow."""
        if self.spawn:
            return
        adopted = None
        if self.hello["module"] == "__main__":
            adopted = _prestarted.pop(self.hello["file"], None)
        proc, self._sock = adopted or _start_warm_parent(None)
        self._pid = proc.pid
        stack.push_async_callback(self._stop_warm_parent, proc)
        await self._send(self.hello)
        reply = await self._receive()
        if reply is None or "error" in reply:
            detail = reply["error"] if reply else "it exited before saying it was ready"
            raise BackendUnavailable(f"the local task launcher could not load the flow:\n{detail}")
        tg = await stack.enter_async_context(anyio.create_task_group())
        stack.callback(tg.cancel_scope.cancel)
        tg.start_soon(self._dispatch)

    async def _stop_warm_parent(self, proc: subprocess.Popen[bytes]) -> None:
        with anyio.CancelScope(shield=True):
            if self._sock is not None:
                self._sock.close()  # the warm parent sees EOF, stops leftovers and exits
            try:
                await anyio.to_thread.run_sync(proc.wait, 2 * TERM_GRACE)
            except subprocess.TimeoutExpired:
                proc.kill()
                await anyio.to_thread.run_sync(proc.wait)

    # -- the socket to the warm parent -------------------------------------------------------

    async def _send(self, message: Hello | Request) -> None:
        assert self._sock is not None
        data = msgpack.packb(message, use_bin_type=True)
        async with self._send_lock:  # one writer may wait for the socket at a time
            while True:
                try:
                    self._sock.send(data)
                    return
                except BlockingIOError:
                    await anyio.wait_writable(self._sock)
                except OSError as e:
                    raise self._launcher_died() from e

    async def _receive(self) -> Any:
        """The next message, or None once the warm parent is gone."""
        assert self._sock is not None
        while True:
            try:
                size = self._sock.recv_into(self._buffer)
            except BlockingIOError:
                await anyio.wait_readable(self._sock)
                continue
            except OSError:
                return None
            return msgpack.unpackb(memoryview(self._buffer)[:size], raw=False) if size else None

    def _launcher_died(self) -> BackendUnavailable:
        return BackendUnavailable(
            f"the local task launcher (warm parent, pid {self._pid}) died; "
            "its tasks were stopped with it"
        )

    async def _dispatch(self) -> None:
        """Route the warm parent's messages (output chunks and exits) to their tasks."""
        while (msg := await self._receive()) is not None:
            event: Event = msg
            task = self._tasks.get(event["task"])
            if task is None:
                continue
            if "data" in event:
                stream = event["stream"]
                for line in task.lines[stream].feed(event["data"]):
                    await task.logs.line(_STREAMS[stream], line)
            elif "exit" in event:
                for stream in (0, 1):
                    for line in task.lines[stream].rest():
                        await task.logs.line(_STREAMS[stream], line)
                task.exit = task_exit(event["exit"])
                del self._tasks[event["task"]]
                task.done.set()
        died = self._launcher_died()
        for task in self._tasks.values():
            task.exit = TaskExit(-signal.SIGKILL, str(died))
            task.done.set()
        self._tasks.clear()

    # -- running a task ----------------------------------------------------------------------

    async def run(self, task: TaskSpec, logs: LogSink) -> TaskExit:
        if self.spawn or task.environment:
            return await run_spawned(task, logs)
        req_id = next(self._ids)
        state = self._tasks[req_id] = _Task(logs)
        try:
            try:
                await self._send(RunTask(run=req_id, spec=task.pack()))
            except AflowException as died:
                del self._tasks[req_id]
                return TaskExit(-signal.SIGKILL, str(died))
            await state.done.wait()
        except BaseException:
            # Cancelled: the warm parent stops the task (SIGTERM, SIGKILL if it lingers); waiting
            # for that here would hold up the run's cancellation for nothing.
            self._tasks.pop(req_id, None)
            if not state.done.is_set():
                with anyio.CancelScope(shield=True), contextlib.suppress(AflowException):
                    await self._send(KillTask(kill=req_id))
            raise
        assert state.exit is not None
        return state.exit
