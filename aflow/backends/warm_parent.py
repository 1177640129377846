"""The local backend's warm parent: a small single-threaded process that forks one child per task.

It imports aflow and the user's flow module once, then serves the scheduler over one Unix socket:
a `run` request carries a packed TaskSpec; the warm parent forks, and the child runs the task runtime
with its stdout and stderr on two pipes. The warm parent reads those pipes and forwards the output
on the socket as it comes, then the exit status once the child has exited and its output is drained;
a `kill` request signals a task's process group. Forking a warm process costs about a millisecond
where a fresh interpreter costs hundreds, and multiplexing every task's output here keeps per-task
file descriptors out of the scheduler's event loop.

A task's processes end with it: when its main process exits, whatever it left running in its process
group is killed. This process never runs an event loop or a thread, which is what makes forking it
safe. When the socket closes (the scheduler went away) it stops every task and exits; if it dies
itself, the kernel stops its tasks (parent-death signal).
"""

from __future__ import annotations

import ctypes
import errno
import gc
import os
import selectors
import signal
import socket
import sys
import time
import traceback
from dataclasses import dataclass, field

import msgpack

from aflow.backends.processes import TERM_GRACE, kill_group
from aflow.backends.warm_messages import (
    Event,
    Hello,
    LoadFailed,
    Ready,
    Request,
    TaskExited,
    TaskOutput,
)
from aflow.engine.task_runtime import run_task
from aflow.engine.wire import TaskSpec
from aflow.stores.factory import open_blocking_store

_MESSAGE_MAX = 1 << 20
_CHUNK = 1 << 16
_DRAIN_GRACE = 0.5  # seconds to read what a dead task's pipes still hold
_PR_SET_PDEATHSIG = 1


@dataclass
class _Child:
    req_id: int
    pid: int
    open_fds: set[int] = field(default_factory=set)
    exitcode: int | None = None
    exited_at: float = 0.0
    kill_at: float | None = None  # when a SIGTERMed task gets SIGKILL


def _stop_with_parent() -> None:
    """Ask the kernel to SIGTERM this process when the warm parent dies (Linux only)."""
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(_PR_SET_PDEATHSIG, signal.SIGTERM, 0, 0, 0)
    except (OSError, AttributeError):
        pass


def _run_child(spec_bytes: bytes, out_w: int, err_w: int, closing: list[int], flow_cls: type) -> None:
    """In the forked child: its own process group, output on the pipes, run, exit."""
    code = 1
    try:
        os.setpgid(0, 0)  # so that stopping the task also stops whatever it started
        _stop_with_parent()
        signal.set_wakeup_fd(-1)
        for sig in (signal.SIGCHLD, signal.SIGINT, signal.SIGHUP):
            signal.signal(sig, signal.SIG_DFL)
        for fd in closing:
            os.close(fd)
        os.dup2(out_w, 1)
        os.dup2(err_w, 2)
        os.close(out_w)
        os.close(err_w)
        spec = TaskSpec.unpack(spec_bytes)
        store = open_blocking_store(spec.datastore, spec.store_root)
        code = run_task(spec, store, flow_cls)
        store.close()
    except BaseException:
        traceback.print_exc()
    finally:
        try:
            sys.stdout.flush()
            sys.stderr.flush()
        finally:
            os._exit(code)


class WarmParent:
    def __init__(self, sock: socket.socket, flow_cls: type) -> None:
        self.sock = sock
        self.flow_cls = flow_cls
        self.buffer = bytearray(_MESSAGE_MAX)
        self.by_req: dict[int, _Child] = {}
        self.by_pid: dict[int, _Child] = {}
        self.by_fd: dict[int, tuple[_Child, int]] = {}  # fd -> (child, 0 for stdout / 1 for stderr)
        self.wake_r, self.wake_w = os.pipe()
        os.set_blocking(self.wake_r, False)
        os.set_blocking(self.wake_w, False)
        self.selector = selectors.DefaultSelector()  # epoll: no limit on descriptor numbers
        self.selector.register(self.sock, selectors.EVENT_READ)
        self.selector.register(self.wake_r, selectors.EVENT_READ)

    def serve(self) -> None:
        signal.set_wakeup_fd(self.wake_w)
        signal.signal(signal.SIGCHLD, lambda *_: None)
        signal.signal(signal.SIGINT, signal.SIG_IGN)  # the scheduler decides when tasks stop
        signal.signal(signal.SIGHUP, signal.SIG_IGN)  # a closed terminal too
        try:
            while True:
                events = self.selector.select(self._timeout())
                requests = False
                for key, _ in events:
                    if key.fd == self.wake_r:
                        self._drain_wakeups()
                    elif key.fd == self.sock.fileno():
                        requests = True
                    else:
                        self._forward(key.fd)
                self._reap()
                self._finish_lingering()
                self._escalate_kills()
                if requests and not self._serve_request():
                    return
        finally:
            self._stop_all()

    def _serve_request(self) -> bool:
        size = self.sock.recv_into(self.buffer)
        if not size:
            return False
        req: Request = msgpack.unpackb(memoryview(self.buffer)[:size], raw=False)
        if "kill" in req:
            child = self.by_req.get(req["kill"])
            if child is not None and child.exitcode is None:
                kill_group(child.pid, signal.SIGTERM)
                child.kill_at = time.monotonic() + TERM_GRACE
            return True
        out_r, out_w = os.pipe()
        err_r, err_w = os.pipe()
        pid = os.fork()
        if pid == 0:
            closing = [self.sock.fileno(), self.wake_r, self.wake_w, out_r, err_r, *self.by_fd]
            self.selector = None  # type: ignore[assignment]  # the child has no use for it
            _run_child(req["spec"], out_w, err_w, closing, self.flow_cls)
        os.close(out_w)
        os.close(err_w)
        child = _Child(req["run"], pid, {out_r, err_r})
        self.by_req[child.req_id] = self.by_pid[pid] = child
        for stream, fd in enumerate((out_r, err_r)):
            self.by_fd[fd] = (child, stream)
            self.selector.register(fd, selectors.EVENT_READ)
        return True

    def _timeout(self) -> float | None:
        """How long select may wait: until a drain grace or a kill escalation is due."""
        now, due = time.monotonic(), []
        for c in self.by_req.values():
            if c.exitcode is not None:
                due.append(c.exited_at + _DRAIN_GRACE)
            elif c.kill_at is not None:
                due.append(c.kill_at)
        return max(0.0, min(due) - now) if due else None

    def _escalate_kills(self) -> None:
        now = time.monotonic()
        for c in self.by_req.values():
            if c.exitcode is None and c.kill_at is not None and now >= c.kill_at:
                kill_group(c.pid, signal.SIGKILL)
                c.kill_at = None

    def _forward(self, fd: int) -> None:
        child, stream = self.by_fd[fd]
        try:
            data = os.read(fd, _CHUNK)
        except OSError:
            data = b""
        if data:
            _send(self.sock, TaskOutput(task=child.req_id, stream=stream, data=data))
            return
        self._close(fd)
        self._maybe_done(child)

    def _close(self, fd: int) -> None:
        child, _ = self.by_fd.pop(fd)
        child.open_fds.discard(fd)
        self.selector.unregister(fd)
        os.close(fd)

    def _drain_wakeups(self) -> None:
        try:
            while os.read(self.wake_r, 512):
                pass
        except BlockingIOError:
            pass

    def _reap(self, report: bool = True) -> None:
        while self.by_pid:
            try:
                pid, status = os.waitpid(-1, os.WNOHANG)
            except ChildProcessError:
                return
            if pid == 0:
                return
            child = self.by_pid.pop(pid, None)
            if child is None:
                continue
            child.exitcode = os.waitstatus_to_exitcode(status)
            child.exited_at = time.monotonic()
            # The task is over: what it left running in its group goes too (and lets go of the
            # pipes, so its output can be drained to the end).
            kill_group(pid, signal.SIGKILL)
            if report:
                self._maybe_done(child)

    def _finish_lingering(self) -> None:
        now = time.monotonic()
        for child in list(self.by_req.values()):
            if child.exitcode is not None and now - child.exited_at >= _DRAIN_GRACE:
                for fd in list(child.open_fds):
                    self._close(fd)
                self._maybe_done(child)

    def _maybe_done(self, child: _Child) -> None:
        if child.exitcode is None or child.open_fds:
            return
        del self.by_req[child.req_id]
        _send(self.sock, TaskExited(task=child.req_id, exit=child.exitcode))

    def _stop_all(self) -> None:
        """SIGTERM every task (each cleans up: no temporary files left), SIGKILL the stragglers."""
        for child in self.by_req.values():
            kill_group(child.pid, signal.SIGTERM)
        deadline = time.monotonic() + TERM_GRACE
        while self.by_pid and time.monotonic() < deadline:
            time.sleep(0.02)
            self._reap(report=False)
        for child in self.by_req.values():
            kill_group(child.pid, signal.SIGKILL)


def _send(sock: socket.socket, msg: Ready | LoadFailed | Event) -> None:
    sock.send(msgpack.packb(msg, use_bin_type=True))


def serve(sock: socket.socket) -> None:
    data = sock.recv(_MESSAGE_MAX)
    if not data:
        return  # started ahead of a run that was then refused
    hello: Hello = msgpack.unpackb(data, raw=False)
    try:
        from aflow.engine.flow_loader import import_flow
        from aflow.graph import graph_for

        # Import the store's modules (and a cloud SDK's models) once here, not in every task.
        open_blocking_store(hello["datastore"], hello["store_root"])
        if hello["datastore"] != "local":
            from aflow.stores.factory import open_store

            open_store(hello["datastore"], hello["store_root"]).prewarm()
        flow_cls = import_flow(hello["name"], hello["module"], hello["file"], hello["sys_path"])
        if any("card" in node.decorators for node in graph_for(flow_cls).nodes.values()):
            from aflow.cards.runtime import prewarm

            prewarm()  # what rendering a card imports and reads, once here, not in every task
    except BaseException:
        _send(sock, LoadFailed(error=traceback.format_exc()))
        return
    # Children inherit line-buffered output, and never touch (so never copy) the warm parent's
    # objects when their garbage collector runs.
    sys.stdout.reconfigure(line_buffering=True)  # type: ignore[union-attr]
    sys.stderr.reconfigure(line_buffering=True)  # type: ignore[union-attr]
    gc.collect()
    gc.freeze()
    _send(sock, Ready(ready=os.getpid()))
    WarmParent(sock, flow_cls).serve()


def main() -> None:
    sock = socket.socket(fileno=int(sys.argv[1]))
    if len(sys.argv) > 2:
        # Started ahead of the run (see local.prestart): load the flow file while the scheduler
        # loads it too. A failure here is reported when the hello arrives and the load is retried.
        try:
            from aflow.engine.flow_loader import import_flow

            import_flow("", "__main__", sys.argv[2], [])
        except BaseException:
            pass
    try:
        serve(sock)
    except OSError as e:
        if e.errno not in (errno.EPIPE, errno.ECONNRESET):
            raise


if __name__ == "__main__":
    main()
