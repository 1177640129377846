"""The messages between the local backend (the scheduler's side) and its warm parent, one msgpack map
per datagram on their SOCK_SEQPACKET socket.

The backend says `Hello` once, then sends `RunTask` and `KillTask`; the warm parent answers the hello
with `Ready` or `LoadFailed`, then sends `TaskOutput` as a task prints and `TaskExited` once it is
over. A task is named by the number the backend gave it in `RunTask`. Each message type is final,
so `"key" in message` tells the kinds apart, for the type checker too.
"""

from __future__ import annotations

from typing import TypedDict, final


@final
class Hello(TypedDict):
    """Which flow to import, and which store its tasks write to."""

    name: str  # the flow class
    module: str
    file: str
    sys_path: list[str]
    datastore: str
    store_root: str


@final
class Ready(TypedDict):
    ready: int  # the warm parent's pid


@final
class LoadFailed(TypedDict):
    error: str  # the traceback of importing the flow or opening the store


@final
class RunTask(TypedDict):
    run: int  # the task's number
    spec: bytes  # TaskSpec.pack()


@final
class KillTask(TypedDict):
    kill: int  # SIGTERM the task's process group, SIGKILL if it lingers


@final
class TaskOutput(TypedDict):
    task: int
    stream: int  # 0 stdout, 1 stderr
    data: bytes  # as read from the pipe: not split into lines


@final
class TaskExited(TypedDict):
    task: int
    exit: int  # os.waitstatus_to_exitcode: negative for a signal


Request = RunTask | KillTask
Event = TaskOutput | TaskExited
