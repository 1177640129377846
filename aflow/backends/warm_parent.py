"""The local backend's warm parent: a small single-threaded process that forks one child per task.

It imports aflow and the user's flow module once, then waits on a Unix socket for task requests.
Each request carries a packed TaskSpec and two pipe ends (the task's stdout and stderr, passed as
file descriptors); the warm parent forks, and the child runs the task runtime with its output on
those pipes. Forking a warm process costs about a millisecond where a fresh interpreter costs
hundreds. This process never runs an event loop or a thread, which is what makes forking it safe;
it reports each child's pid and exit status back on the socket, and when the socket closes (the
scheduler went away) it kills every child it started and exits.
"""

from __future__ import annotations

import errno
import gc
import os
import select
import signal
import socket
import sys
import traceback

import msgpack

_MAX_MESSAGE = 1 << 20


def _send(sock: socket.socket, msg: dict[str, object]) -> None:
    sock.send(msgpack.packb(msg, use_bin_type=True))


def _run_child(spec_bytes: bytes, fds: list[int], closing: list[int], flow_cls: type) -> None:
    """In the forked child: become its own process group, wire up output, run, exit."""
    code = 1
    try:
        os.setpgid(0, 0)  # its own process group, so a cancel reaches what it starts too
        signal.set_wakeup_fd(-1)
        for sig in (signal.SIGCHLD, signal.SIGINT, signal.SIGTERM):
            signal.signal(sig, signal.SIG_DFL)
        for fd in closing:
            os.close(fd)
        os.dup2(fds[0], 1)
        os.dup2(fds[1], 2)
        os.close(fds[0])
        os.close(fds[1])
        sys.stdout.reconfigure(line_buffering=True)  # type: ignore[union-attr]
        sys.stderr.reconfigure(line_buffering=True)  # type: ignore[union-attr]
        from aflow.backends.base import TaskSpec
        from aflow.engine.task_runtime import run_task
        from aflow.stores.base import open_blocking_store

        spec = TaskSpec.unpack(spec_bytes)
        code = run_task(spec, open_blocking_store(spec.datastore, spec.store_root), flow_cls)
    except BaseException:
        traceback.print_exc()
    finally:
        try:
            sys.stdout.flush()
            sys.stderr.flush()
        finally:
            os._exit(code)


def serve(sock: socket.socket) -> None:
    hello = msgpack.unpackb(sock.recv(_MAX_MESSAGE), raw=False)
    try:
        from aflow.engine.flow_loader import import_flow
        from aflow.engine.task_runtime import run_task  # noqa: F401 - imported to be warm
        from aflow.stores.base import open_blocking_store

        open_blocking_store(hello["datastore"], hello["store_root"])  # imports the store's module once
        from aflow.graph import graph_for

        flow_cls = import_flow(hello["name"], hello["module"], hello["file"], hello["sys_path"])
        graph_for(flow_cls)
    except BaseException:
        _send(sock, {"error": traceback.format_exc()})
        return
    # Children then never touch (and so never copy) the warm parent's objects when they collect.
    gc.collect()
    gc.freeze()
    _send(sock, {"ready": os.getpid()})

    wake_r, wake_w = os.pipe()
    os.set_blocking(wake_r, False)
    os.set_blocking(wake_w, False)
    signal.set_wakeup_fd(wake_w)
    signal.signal(signal.SIGCHLD, lambda *_: None)
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the scheduler decides when tasks stop
    children: dict[int, int] = {}
    try:
        while True:
            readable, _, _ = select.select([sock, wake_r], [], [])
            if wake_r in readable:
                try:
                    while os.read(wake_r, 512):
                        pass
                except BlockingIOError:
                    pass
            _reap(sock, children)
            if sock not in readable:
                continue
            msg, fds, _flags, _addr = socket.recv_fds(sock, _MAX_MESSAGE, 2)
            if not msg:
                return
            req = msgpack.unpackb(msg, raw=False)
            pid = os.fork()
            if pid == 0:
                _run_child(req["spec"], fds, [sock.fileno(), wake_r, wake_w], flow_cls)
            for fd in fds:
                os.close(fd)
            children[pid] = req["id"]
            _send(sock, {"id": req["id"], "pid": pid})
    finally:
        for pid in children:
            try:
                os.killpg(pid, signal.SIGKILL)
            except OSError:
                pass


def _reap(sock: socket.socket, children: dict[int, int]) -> None:
    while children:
        try:
            pid, status = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            return
        if pid == 0:
            return
        req_id = children.pop(pid, None)
        if req_id is not None:
            _send(sock, {"id": req_id, "exit": os.waitstatus_to_exitcode(status)})


def main() -> None:
    sock = socket.socket(fileno=int(sys.argv[1]))
    try:
        serve(sock)
    except OSError as e:
        if e.errno not in (errno.EPIPE, errno.ECONNRESET):
            raise


if __name__ == "__main__":
    main()
