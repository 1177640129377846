"""The local backend: each task in its own OS process on this machine.

By default tasks are forked from a warm parent (see warm_parent.py) that has already imported aflow
and the flow module; where fork is unavailable, or with AFLOW_LOCAL_SPAWN=1, each task is a fresh
`python -m aflow.engine.task_runtime`. Either way the task's stdout and stderr come back over pipes
and are forwarded line by line to the LogSink while the task runs. Cancelling `run` kills the task's
whole process group.
"""

from __future__ import annotations

import contextlib
import itertools
import os
import signal
import socket
import subprocess
import sys
from collections.abc import AsyncIterator
from types import TracebackType

import anyio
import msgpack

from aflow.backends.base import LogSink, TaskExit, TaskSpec
from aflow.exception import AflowException

_TERM_GRACE = 3.0
_DRAIN_GRACE = 2.0


class _Child:
    def __init__(self) -> None:
        self.pid: int | None = None
        self.exitcode: int | None = None
        self.done = anyio.Event()
        self.abandoned = False


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
        self._children: dict[int, _Child] = {}
        self._ids = itertools.count()
        self._stack = contextlib.AsyncExitStack()

    # -- lifetime ----------------------------------------------------------------------------

    async def __aenter__(self) -> LocalBackend:
        if self.spawn:
            return self
        ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        try:
            proc = await anyio.open_process(
                [sys.executable, "-m", "aflow.backends.warm_parent", str(theirs.fileno())],
                pass_fds=(theirs.fileno(),),
                stdin=subprocess.DEVNULL,
                stdout=None,
                stderr=None,
            )
        finally:
            theirs.close()
        self._stack.push_async_callback(self._stop_warm_parent, proc)
        ours.setblocking(False)
        self._sock = ours
        ours.send(msgpack.packb(self.hello, use_bin_type=True))
        reply = await self._receive()
        if reply is None or "error" in reply:
            await self._stack.aclose()
            detail = reply["error"] if reply else "it exited before saying it was ready"
            raise AflowException(f"the local task launcher could not load the flow:\n{detail}")
        tg = await self._stack.enter_async_context(anyio.create_task_group())
        self._stack.callback(tg.cancel_scope.cancel)
        tg.start_soon(self._dispatch_replies)
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self._stack.__aexit__(exc_type, exc, tb)

    async def _stop_warm_parent(self, proc: anyio.abc.Process) -> None:
        with anyio.CancelScope(shield=True):
            if self._sock is not None:
                self._sock.close()  # the warm parent sees EOF, kills leftovers and exits
            with anyio.move_on_after(_TERM_GRACE):
                await proc.wait()
                return
            proc.kill()
            await proc.wait()

    async def _receive(self) -> dict[str, object] | None:
        assert self._sock is not None
        while True:
            await anyio.wait_readable(self._sock)
            try:
                data = self._sock.recv(1 << 16)
            except BlockingIOError:
                continue
            return msgpack.unpackb(data, raw=False) if data else None

    async def _dispatch_replies(self) -> None:
        while (msg := await self._receive()) is not None:
            child = self._children.get(msg["id"])  # type: ignore[arg-type]
            if child is None:
                continue
            if "pid" in msg:
                child.pid = msg["pid"]  # type: ignore[assignment]
                if child.abandoned:
                    _kill_group(child.pid, signal.SIGKILL)
            if "exit" in msg:
                child.exitcode = msg["exit"]  # type: ignore[assignment]
                del self._children[msg["id"]]  # type: ignore[arg-type]
                child.done.set()
        for child in self._children.values():  # the warm parent is gone, and its children too
            child.exitcode = -signal.SIGKILL
            child.done.set()
        self._children.clear()

    # -- running a task ----------------------------------------------------------------------

    async def run(self, task: TaskSpec, logs: LogSink) -> TaskExit:
        if self.spawn:
            return await self._run_spawned(task, logs)
        assert self._sock is not None
        out_r, out_w = os.pipe()
        err_r, err_w = os.pipe()
        req_id = next(self._ids)
        child = self._children[req_id] = _Child()
        try:
            try:
                message = msgpack.packb({"id": req_id, "spec": task.pack()}, use_bin_type=True)
                await self._send_fds(message, [out_w, err_w])
            finally:
                os.close(out_w)
                os.close(err_w)
            async with anyio.create_task_group() as tg:
                drained = [anyio.Event(), anyio.Event()]
                tg.start_soon(_pump, _fd_chunks(out_r), "stdout", logs, drained[0])
                tg.start_soon(_pump, _fd_chunks(err_r), "stderr", logs, drained[1])
                await child.done.wait()
                with anyio.move_on_after(_DRAIN_GRACE):  # a grandchild may hold the pipes open
                    for event in drained:
                        await event.wait()
                tg.cancel_scope.cancel()
        except BaseException:
            if not child.done.is_set():
                child.abandoned = True
                await self._stop(child)
            raise
        finally:
            os.close(out_r)
            os.close(err_r)
        assert child.exitcode is not None
        return _exit(child.exitcode)

    async def _send_fds(self, message: bytes, fds: list[int]) -> None:
        assert self._sock is not None
        while True:
            try:
                socket.send_fds(self._sock, [message], fds)
                return
            except BlockingIOError:
                await anyio.wait_writable(self._sock)

    async def _stop(self, child: _Child) -> None:
        with anyio.CancelScope(shield=True):
            if child.pid is None:
                return  # killed by the dispatcher as soon as its pid arrives
            _kill_group(child.pid, signal.SIGTERM)
            with anyio.move_on_after(_TERM_GRACE):
                await child.done.wait()
                return
            _kill_group(child.pid, signal.SIGKILL)

    async def _run_spawned(self, task: TaskSpec, logs: LogSink) -> TaskExit:
        proc = await anyio.open_process(
            [sys.executable, "-m", "aflow.engine.task_runtime"], start_new_session=True
        )
        try:
            assert proc.stdin and proc.stdout and proc.stderr
            await proc.stdin.send(task.pack())
            await proc.stdin.aclose()
            async with anyio.create_task_group() as tg:
                tg.start_soon(_pump, proc.stdout, "stdout", logs, anyio.Event())
                tg.start_soon(_pump, proc.stderr, "stderr", logs, anyio.Event())
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


async def _fd_chunks(fd: int) -> AsyncIterator[bytes]:
    os.set_blocking(fd, False)
    while True:
        try:
            chunk = os.read(fd, 1 << 16)
        except BlockingIOError:
            await anyio.wait_readable(fd)
            continue
        if not chunk:
            return
        yield chunk


async def _pump(chunks: AsyncIterator[bytes], stream: str, logs: LogSink, drained: anyio.Event) -> None:
    """Forward whole lines as they arrive; a last line without a newline is sent at EOF."""
    pending = b""
    async for chunk in chunks:
        pending += chunk
        *lines, pending = pending.split(b"\n")
        for line in lines:
            await logs.line(stream, line.decode(errors="replace"))
    if pending:
        await logs.line(stream, pending.decode(errors="replace"))
    drained.set()
