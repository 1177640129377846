"""The local backend: each task in its own OS process on this machine.

By default tasks are forked from a warm parent (see warm_parent.py) that has already imported aflow
and the flow module; all tasks' output comes back multiplexed on the one socket to it. Where fork is
unavailable, or with AFLOW_LOCAL_SPAWN=1, each task is a fresh `python -m aflow.engine.task_runtime`
with its own pipes. Either way output is forwarded line by line to the LogSink while the task runs,
and cancelling `run` stops the task's whole process group (SIGTERM, then SIGKILL).
"""

from __future__ import annotations

import contextlib
import itertools
import os
import signal
import socket
import subprocess
import sys
from collections.abc import AsyncIterable
from types import TracebackType
from typing import Any

import anyio
import msgpack

from aflow.backends.base import LogSink, TaskExit, TaskSpec
from aflow.exception import AflowException

_TERM_GRACE = 3.0
_STREAMS = ("stdout", "stderr")


_prestarted: dict[str, tuple[subprocess.Popen[bytes], socket.socket]] = {}


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
    if os.environ.get("AFLOW_LOCAL_SPAWN") == "1" or not hasattr(os, "fork"):
        return
    path = os.path.abspath(flow_file)
    if path not in _prestarted:
        _prestarted[path] = _start_warm_parent(path)


class _Task:
    """What the scheduler side knows of one forked task: its log, its line buffers, its exit."""

    def __init__(self, logs: LogSink) -> None:
        self.logs = logs
        self.pending = [b"", b""]
        self.exitcode: int | None = None
        self.done = anyio.Event()


class LocalBackend:
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
        self.hello = {
            "name": name,
            "module": module,
            "file": file,
            "sys_path": sys_path,
            "datastore": datastore,
            "store_root": store_root,
        }
        if spawn is None:
            spawn = os.environ.get("AFLOW_LOCAL_SPAWN") == "1" or not hasattr(os, "fork")
        self.spawn = spawn
        self._sock: socket.socket | None = None
        self._tasks: dict[int, _Task] = {}
        self._ids = itertools.count()
        self._stack = contextlib.AsyncExitStack()

    # -- lifetime ----------------------------------------------------------------------------

    async def __aenter__(self) -> LocalBackend:
        if self.spawn:
            return self
        adopted = (
            _prestarted.pop(self.hello["file"], None) if self.hello["module"] == "__main__" else None
        )
        proc, self._sock = adopted or _start_warm_parent(None)
        self._stack.push_async_callback(self._stop_warm_parent, proc)
        await self._send(self.hello)
        reply = await self._receive()
        if reply is None or "error" in reply:
            await self._stack.aclose()
            detail = reply["error"] if reply else "it exited before saying it was ready"
            raise AflowException(f"the local task launcher could not load the flow:\n{detail}")
        tg = await self._stack.enter_async_context(anyio.create_task_group())
        self._stack.callback(tg.cancel_scope.cancel)
        tg.start_soon(self._dispatch)
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self._stack.__aexit__(exc_type, exc, tb)

    async def _stop_warm_parent(self, proc: subprocess.Popen[bytes]) -> None:
        with anyio.CancelScope(shield=True):
            if self._sock is not None:
                self._sock.close()  # the warm parent sees EOF, kills leftovers and exits
            try:
                await anyio.to_thread.run_sync(proc.wait, _TERM_GRACE)
            except subprocess.TimeoutExpired:
                proc.kill()
                await anyio.to_thread.run_sync(proc.wait)

    async def _send(self, message: dict[str, Any]) -> None:
        assert self._sock is not None
        data = msgpack.packb(message, use_bin_type=True)
        while True:
            try:
                self._sock.send(data)
                return
            except BlockingIOError:
                await anyio.wait_writable(self._sock)

    async def _receive(self) -> dict[str, Any] | None:
        assert self._sock is not None
        while True:
            try:
                data = self._sock.recv(1 << 20)
            except BlockingIOError:
                await anyio.wait_readable(self._sock)
                continue
            return msgpack.unpackb(data, raw=False) if data else None

    async def _dispatch(self) -> None:
        """Route the warm parent's messages: output chunks and exits, by request id."""
        while (msg := await self._receive()) is not None:
            task = self._tasks.get(msg["id"])
            if task is None:
                continue
            if "d" in msg:
                stream = msg["s"]
                *lines, task.pending[stream] = (task.pending[stream] + msg["d"]).split(b"\n")
                for line in lines:
                    await task.logs.line(_STREAMS[stream], line.decode(errors="replace"))
            elif "exit" in msg:
                for stream, rest in enumerate(task.pending):
                    if rest:
                        await task.logs.line(_STREAMS[stream], rest.decode(errors="replace"))
                task.exitcode = msg["exit"]
                del self._tasks[msg["id"]]
                task.done.set()
        for task in self._tasks.values():  # the warm parent is gone, and its children with it
            task.exitcode = -signal.SIGKILL
            task.done.set()
        self._tasks.clear()

    # -- running a task ----------------------------------------------------------------------

    async def run(self, task: TaskSpec, logs: LogSink) -> TaskExit:
        if self.spawn:
            return await self._run_spawned(task, logs)
        req_id = next(self._ids)
        state = self._tasks[req_id] = _Task(logs)
        try:
            await self._send({"run": req_id, "spec": task.pack()})
            await state.done.wait()
        except BaseException:
            with anyio.CancelScope(shield=True):
                if not state.done.is_set():
                    await self._send({"kill": req_id, "sig": signal.SIGTERM})
                    with anyio.move_on_after(_TERM_GRACE):
                        await state.done.wait()
                    if not state.done.is_set():
                        await self._send({"kill": req_id, "sig": signal.SIGKILL})
            raise
        assert state.exitcode is not None
        return _exit(state.exitcode)

    async def _run_spawned(self, task: TaskSpec, logs: LogSink) -> TaskExit:
        proc = await anyio.open_process(
            [sys.executable, "-m", "aflow.engine.task_runtime"], start_new_session=True
        )
        try:
            assert proc.stdin and proc.stdout and proc.stderr
            await proc.stdin.send(task.pack())
            await proc.stdin.aclose()
            async with anyio.create_task_group() as tg:
                tg.start_soon(_pump, proc.stdout, "stdout", logs)
                tg.start_soon(_pump, proc.stderr, "stderr", logs)
                code = await proc.wait()
        except BaseException:
            with anyio.CancelScope(shield=True):
                _kill_group(proc.pid, signal.SIGTERM)
                with anyio.move_on_after(_TERM_GRACE):
                    await proc.wait()
                if proc.returncode is None:
                    _kill_group(proc.pid, signal.SIGKILL)
                    await proc.wait()
            raise
        return _exit(code)


def _exit(code: int) -> TaskExit:
    if code < 0:
        return TaskExit(code, f"killed by {signal.Signals(-code).name}")
    return TaskExit(code, None if code == 0 else f"exited with code {code}")


def _kill_group(pid: int, sig: int) -> None:
    try:
        os.killpg(pid, sig)
    except (ProcessLookupError, PermissionError):
        pass


async def _pump(chunks: AsyncIterable[bytes], stream: str, logs: LogSink) -> None:
    """Forward whole lines as they arrive; a last line without a newline is sent at EOF."""
    pending = b""
    async for chunk in chunks:
        pending += chunk
        *lines, pending = pending.split(b"\n")
        for line in lines:
            await logs.line(stream, line.decode(errors="replace"))
    if pending:
        await logs.line(stream, pending.decode(errors="replace"))
