"""What the remote backends (AWS Batch, Kubernetes) share: the container contract and the bookkeeping
that lets one scheduler track 10,000 remote tasks as plain coroutines.

The container contract: a task's container runs `python3 -c <engine/bootstrap.py>` with an
environment saying where the datastore is, where the run's code package is (uploaded once per run,
content-addressed), and which blob holds the packed TaskSpecs of its job. A job is one task, or an
array of tasks (AWS Batch array job, Kubernetes Indexed Job) whose children pick their spec by the
index the platform gives them.

The bookkeeping: `run()` parks the task as a `RemoteTask` and waits on it. Tasks of one step that
become ready together (a foreach's children, all launched in one burst) are gathered for a moment and
submitted as one array job. The platform's single poller or watch updates the parked tasks and
finishes them; nothing runs per waiting task. A cancelled task's job is stopped; leaving the backend
stops every job it still has running.
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import os
import re
import sys
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from importlib import metadata
from typing import Any, ClassVar

import anyio
import anyio.abc

from aflow.backends.base import BackendBase, LogSink
from aflow.backends.launch import BOOT_ENV, launch_blob, pack_specs
from aflow.backends.launch import bootstrap_command as bootstrap_command  # for the drivers
from aflow.decorators import resources_for
from aflow.engine.packaging import build_package, env_patterns
from aflow.engine.wheelhouse import WheelhouseMaker
from aflow.engine.wire import TaskExit, TaskSpec
from aflow.env_numbers import env_int, env_number
from aflow.install_hint import DISTRIBUTION
from aflow.requirements import requirements_for
from aflow.stores.artifacts import blob_key
from aflow.stores.base import ObjectStore

# Environment variables of the launching shell a container gets too (S3-compatible endpoints,
# transfer tuning), so remote tasks reach the same store the same way.
FORWARDED_ENV = ("AFLOW_S3_ENDPOINT_URL", "AFLOW_PACKAGE_MAX_FILE_SIZE")
FORWARDED_PREFIXES = ("AFLOW_TRANSFER_",)


@dataclass(frozen=True)
class RemoteSettings:
    """What every remote backend reads of the environment, once, when the run's backend is made."""

    gather_seconds: float = 0.05  # AFLOW_REMOTE_GATHER_SECONDS: tasks gathered into one array job
    stuck_seconds: float = 600.0  # AFLOW_REMOTE_STUCK_SECONDS: a job waiting longer is reported
    # AFLOW_PRESIGN_SECONDS: a presigned URL lets whoever can read a job's description fetch the
    # code package: short-lived, and signed afresh for each job (a retry gets a new one).
    presign_seconds: int = 24 * 3600
    image: str | None = None  # the backend's own image variable (AFLOW_BATCH_IMAGE, ...)
    default_image: str | None = None  # AFLOW_DEFAULT_IMAGE
    forwarded: tuple[tuple[str, str], ...] = ()  # the launching shell's, for the containers

    @classmethod
    def from_env(cls, image_setting: str = "AFLOW_DEFAULT_IMAGE") -> RemoteSettings:
        env = os.environ
        return cls(
            gather_seconds=env_number("AFLOW_REMOTE_GATHER_SECONDS", cls.gather_seconds),
            stuck_seconds=env_number("AFLOW_REMOTE_STUCK_SECONDS", cls.stuck_seconds),
            presign_seconds=env_int("AFLOW_PRESIGN_SECONDS", cls.presign_seconds, minimum=0),
            image=env.get(image_setting) or None,
            default_image=env.get("AFLOW_DEFAULT_IMAGE") or None,
            forwarded=tuple(
                (name, value)
                for name, value in sorted(env.items())
                if name in FORWARDED_ENV or name.startswith(FORWARDED_PREFIXES)
            ),
        )


@dataclass(eq=False)  # identity: tasks are kept in sets
class RemoteTask:
    """One task attempt handed to a remote backend, parked until its job ends."""

    spec: TaskSpec
    logs: LogSink
    job_id: str | None = None  # this task's own job id (an array child's: "<parent>:<index>")
    state: str = "QUEUED"  # the platform's word for where the job is
    state_since: float = field(default_factory=time.monotonic)
    exit: TaskExit | None = None
    finished: anyio.Event = field(default_factory=anyio.Event)
    stop: bool = False  # stopped while its job was being submitted: stop it once registered

    @property
    def label(self) -> str:
        return f"{self.spec.step}/{self.spec.task_id}"

    def finish(self, exit: TaskExit) -> None:
        if self.exit is None:
            self.exit = exit
            self.finished.set()


@dataclass(eq=False)
class JobGroup:
    """Tasks of one step submitted as one job: a plain job for one task, an array for more."""

    step: str
    tasks: list[RemoteTask]
    specs_digest: str = ""
    job_id: str | None = None  # the platform's id of the job (the array parent's, for an array)
    warned_stuck: bool = False  # its wait for capacity was reported

    @property
    def is_array(self) -> bool:
        return len(self.tasks) > 1

    @property
    def decorators(self) -> dict[str, dict[str, Any]]:
        return self.tasks[0].spec.decorators


@dataclass
class RemoteContext:
    """What a remote backend needs of the run."""

    flow_name: str
    run_id: str
    flow_file: str
    datastore: str
    store: ObjectStore
    max_workers: int


@dataclass
class CodeRef:
    key: str
    digest: str


class RemoteBackend(BackendBase):
    """The shared half of a remote backend; a driver subclass talks to its platform.

    A driver implements `_open` / `_close` (its client), `_watch` (a loop that updates and finishes
    parked tasks, started once), `_submit(group)` (one job for the group; sets job ids) and
    `_terminate(tasks)` (stop the jobs of these unfinished tasks).
    """

    name = "remote"
    platform = "remote"  # for messages: "AWS Batch", "Kubernetes"
    max_group = 10_000
    stuck_state: ClassVar[tuple[str, ...]] = ()  # states in which a job waits for capacity
    image_setting = "AFLOW_DEFAULT_IMAGE"  # the backend's own default image variable

    def __init__(self, ctx: RemoteContext) -> None:
        self.ctx = ctx
        self.remote_settings = RemoteSettings.from_env(self.image_setting)
        self.gather_seconds = self.remote_settings.gather_seconds
        self.stuck_seconds = self.remote_settings.stuck_seconds
        self.active: dict[str, JobGroup] = {}  # job id -> group, while any of its tasks runs
        self._pending: dict[str, list[RemoteTask]] = {}
        self._arrived = anyio.Event()
        self._to_stop: list[RemoteTask] = []
        self._submitting: set[JobGroup] = set()
        self._none_submitting = anyio.Event()
        self._closing = False
        self._stop_wanted = anyio.Event()
        self._code: CodeRef | None = None
        self._code_lock = anyio.Lock()
        self._wheels = WheelhouseMaker(ctx.store, ctx.flow_name, self.presigned)
        self._tg: anyio.abc.TaskGroup | None = None  # while entered: the loops and submissions

    # -- the driver's part ---------------------------------------------------------------------

    async def _open(self) -> None:
        raise NotImplementedError

    async def _close(self) -> None:
        raise NotImplementedError

    async def _watch(self) -> None:
        raise NotImplementedError

    async def _submit(self, group: JobGroup) -> None:
        raise NotImplementedError

    async def _terminate(self, tasks: list[RemoteTask]) -> None:
        raise NotImplementedError

    # -- lifecycle -----------------------------------------------------------------------------

    async def _start(self, stack: contextlib.AsyncExitStack) -> None:
        """Opens the driver's client and starts its loops. Leaving unwinds in reverse: the run's
        submissions finish and what still runs is stopped (shielded, bounded), the loops are
        cancelled, then the client closes."""
        await self._open()
        stack.push_async_callback(self._close_shielded)
        tg = self._tg = await stack.enter_async_context(anyio.create_task_group())
        stack.callback(tg.cancel_scope.cancel)
        stack.push_async_callback(self._wind_down)
        tg.start_soon(self._submitter)
        tg.start_soon(self._stopper)
        tg.start_soon(self._watch)
        tg.start_soon(self._stuck_reporter)

    async def _wind_down(self) -> None:
        with anyio.CancelScope(shield=True):
            self._closing = True  # no new submissions; those on their way complete (shielded)
            with anyio.move_on_after(120):
                while self._submitting:
                    self._none_submitting = anyio.Event()
                    await self._none_submitting.wait()
            # Whatever is still running when the run ends (failed, cancelled) is stopped.
            running = [t for g in self.active.values() for t in g.tasks if t.exit is None]
            running += [t for ts in self._pending.values() for t in ts]
            if running:
                with anyio.move_on_after(60):
                    await self._terminate(running)

    async def _close_shielded(self) -> None:
        with anyio.CancelScope(shield=True):
            await self._close()

    # -- the Backend protocol ------------------------------------------------------------------

    async def run(self, task: TaskSpec, logs: LogSink) -> TaskExit:
        parked = RemoteTask(task, logs)
        self._pending.setdefault(task.step, []).append(parked)
        self._arrived.set()
        try:
            await parked.finished.wait()
        except BaseException:
            if parked.exit is None:
                self._stop_soon(parked)  # no await: nothing a cancellation could cut short
            raise
        assert parked.exit is not None
        return parked.exit

    def _stop_soon(self, task: RemoteTask) -> None:
        pending = self._pending.get(task.spec.step, [])
        if task in pending:
            pending.remove(task)  # never submitted: nothing to stop
            return
        # A task whose job is being submitted is stopped once the submission has registered it.
        task.stop = True
        self._to_stop.append(task)
        self._stop_wanted.set()

    # -- background tasks ----------------------------------------------------------------------

    async def _submitter(self) -> None:
        """Gather the tasks that arrive together, then submit them, one job per step."""
        while True:
            await self._arrived.wait()
            quiet = False
            while not quiet:  # until none has arrived for gather_seconds
                self._arrived = anyio.Event()
                with anyio.move_on_after(self.gather_seconds) as timer:
                    await self._arrived.wait()
                quiet = timer.cancelled_caught
            if self._closing:
                return
            pending, self._pending = self._pending, {}
            assert self._tg is not None
            for step, tasks in pending.items():
                for i in range(0, len(tasks), self.max_group):
                    group = JobGroup(step, tasks[i : i + self.max_group])
                    self._submitting.add(group)
                    self._tg.start_soon(self._submit_group, group)

    async def _submit_group(self, group: JobGroup) -> None:
        # Shielded: a submission cut off half-way could create a job nobody knows to stop.
        try:
            with anyio.CancelScope(shield=True):
                group.specs_digest = await self._save_specs(group)
                with anyio.fail_after(300):
                    await self._submit(group)
        except Exception as e:
            reason = f"could not submit to {self.platform}: {type(e).__name__}: {e}"
            for t in group.tasks:
                await t.logs.line("stderr", reason)
                t.finish(TaskExit(1, reason))
            return
        finally:
            self._submitting.discard(group)
            if not self._submitting:
                self._none_submitting.set()
        assert group.job_id is not None
        self.active[group.job_id] = group
        stopped = [t for t in group.tasks if t.stop and t.exit is None]
        if stopped:  # stopped while on their way
            with anyio.CancelScope(shield=True):
                await self._terminate(stopped)
        self.retire(group)  # every task may have ended while the submission was on its way
        for t in group.tasks:
            if t.state == "QUEUED":  # the watch may have seen its job already
                t.state, t.state_since = "SUBMITTED", time.monotonic()
        # One line per job, in its first task's log: a 10,000-way array saves one log, not 10,000.
        size = f" (an array of {len(group.tasks)})" if group.is_array else ""
        message = f"[aflow] {self.platform} job {group.job_id}{size} submitted"
        await group.tasks[0].logs.line("stderr", message)

    async def _save_specs(self, group: JobGroup) -> str:
        """The group's specs as one blob, each as the container sees it: the flow file relative to
        the code package's root, sys.path the package."""
        packed = [
            dataclasses.replace(t.spec, flow_file=os.path.basename(t.spec.flow_file), sys_path=[]).pack()
            for t in group.tasks
        ]
        data = pack_specs(packed)  # each child reads only its own (see backends/launch.py)
        digest = hashlib.sha256(data).hexdigest()
        await self.ctx.store.put(blob_key(self.ctx.flow_name, digest), [data])
        return digest

    async def _stopper(self) -> None:
        while True:
            await self._stop_wanted.wait()
            self._stop_wanted = anyio.Event()
            batch, self._to_stop = self._to_stop, []
            with anyio.CancelScope(shield=True):
                await self._terminate([t for t in batch if t.exit is None])

    async def _stuck_reporter(self) -> None:
        """Say when a job waits for capacity past AFLOW_REMOTE_STUCK_SECONDS (a queue without a
        compute environment, a cluster without room): the run looks idle otherwise. Once per job,
        in the log of its first waiting task."""
        if self.stuck_seconds <= 0:
            return  # turned off
        while True:
            await anyio.sleep(min(5.0, self.stuck_seconds / 2))
            now = time.monotonic()
            for group in list(self.active.values()):
                stuck = [
                    t
                    for t in group.tasks
                    if t.exit is None
                    and t.state in self.stuck_state
                    and now - t.state_since >= self.stuck_seconds
                ]
                if not stuck or group.warned_stuck:
                    continue
                group.warned_stuck = True
                first = stuck[0]
                which = (
                    f"{len(stuck)} tasks of job {group.job_id}"
                    if group.is_array
                    else f"job {first.job_id}"
                )
                await first.logs.line(
                    "stderr",
                    f"[aflow] {self.platform} {which} {'have' if group.is_array else 'has'} been "
                    f"{first.state} for {now - first.state_since:.0f} s: is there capacity for "
                    f"{'them' if group.is_array else 'it'} ({self.capacity_hint(group)})?",
                )

    def capacity_hint(self, group: JobGroup) -> str:
        return "the queue's compute environment"

    # -- for drivers ---------------------------------------------------------------------------

    def set_state(self, task: RemoteTask, state: str) -> None:
        if state != task.state:
            task.state, task.state_since = state, time.monotonic()

    def retire(self, group: JobGroup) -> None:
        """Forget a job once every task of it has finished."""
        if group.job_id is not None and all(t.exit is not None for t in group.tasks):
            self.active.pop(group.job_id, None)

    async def code_package(self) -> CodeRef:
        """The run's code package, built and uploaded on first need (once per run)."""
        async with self._code_lock:
            if self._code is None:
                self._code = await _upload_code(self.ctx)
            return self._code

    async def container_env(self, group: JobGroup) -> dict[str, str]:
        """The environment of the group's containers (the same for every child of an array): a
        few short names and one URL; the rest of the settings travel in the launch blob."""
        settings = await self.container_settings(group)
        blob = launch_blob(settings)
        digest = hashlib.sha256(blob).hexdigest()
        key = blob_key(self.ctx.flow_name, digest)
        await self.ctx.store.put(key, [blob])
        env = {k: settings[k] for k in BOOT_ENV if k in settings}
        env.update(AFLOW_BOOT_KEY=key, AFLOW_BOOT_SHA256=digest)
        url = await self.presigned(key)
        if url:
            env["AFLOW_BOOT_URL"] = url
        return env

    async def container_settings(self, group: JobGroup) -> dict[str, str]:
        """Everything a container of the group needs to know, for the launch blob."""
        code = await self.code_package()
        env = {
            "AFLOW_BACKEND": self.name,
            "AFLOW_DATASTORE": self.ctx.datastore,
            "AFLOW_DATASTORE_ROOT": self.ctx.store.url,
            "AFLOW_FLOW_NAME": self.ctx.flow_name,
            "AFLOW_TASK_SPECS": group.specs_digest,
            "AFLOW_TASK_COUNT": str(len(group.tasks)),
            "AFLOW_CODE_KEY": code.key,
            "AFLOW_CODE_SHA256": code.digest,
            "AFLOW_REQUIREMENTS": requirements_for(self.ctx.datastore),
            "AFLOW_IMAGE": self.image(group),
            "AFLOW_MIN_PYTHON": min_python(),
            "PYTHONUNBUFFERED": "1",
        }
        environment = group.tasks[0].spec.environment
        if not environment:  # what the image lacks comes from a wheelhouse, not from PyPI
            wheels = self._wheels.container_settings(env["AFLOW_REQUIREMENTS"], env["AFLOW_IMAGE"])
            env.update(await wheels)
        if environment:  # @pypi/@conda: the bootstrap recreates it from its stored lock
            env["AFLOW_ENV_KEY"] = environment["key"]
            env["AFLOW_ENV_KIND"] = environment["kind"]
            env["AFLOW_ENV_LOCK_KEY"] = environment["lock_key"]
            env["AFLOW_ENV_PYTHON"] = environment.get("python_version", "")
            url = await self.presigned(environment["lock_key"])
            if url:
                env["AFLOW_ENV_LOCK_URL"] = url
        # Signed afresh for each job: a URL signed with temporary credentials dies with them.
        url = await self.presigned(code.key)
        if url:
            env["AFLOW_CODE_URL"] = url
        if not group.is_array:
            env["AFLOW_TASK_INDEX"] = "0"
        env.update(self.remote_settings.forwarded)
        return env

    async def presigned(self, key: str) -> str | None:
        """A URL for the container to read `key` by; None with AFLOW_PRESIGN_SECONDS=0 (no URL in
        any job description: the container reads through the datastore with its own role)."""
        seconds = self.remote_settings.presign_seconds
        return await presigned(self.ctx.store, key, seconds) if seconds > 0 else None

    def resources(self, group: JobGroup) -> dict[str, float | None]:
        return resources_for(group.decorators, self.name)

    def image(self, group: JobGroup) -> str:
        """The container image: the decorator's, else the backend's setting, else the default."""
        own = group.decorators.get(self.name, {}).get("image")
        settings = self.remote_settings
        return str(own or settings.image or settings.default_image or default_image(group))


def default_image(group: JobGroup) -> str:
    """python:X.Y of the step's environment (@pypi(python=...)), else of this interpreter."""
    environment = group.tasks[0].spec.environment or {}
    here = f"{sys.version_info.major}.{sys.version_info.minor}"
    return f"python:{environment.get('python_version') or here}"


def min_python() -> str:
    """The oldest Python aflow runs on, from its metadata ("3.11" of ">=3.11")."""
    try:
        declared = "".join(metadata.metadata(DISTRIBUTION).get_all("Requires-Python") or [])
    except metadata.PackageNotFoundError:  # a checkout on the path, not installed
        declared = ""
    found = re.search(r"(\d+\.\d+)", declared)
    return found.group(1) if found else "3.11"


async def _upload_code(ctx: RemoteContext) -> CodeRef:
    package = await anyio.to_thread.run_sync(
        lambda: build_package(
            ctx.flow_file, env_patterns("AFLOW_PACKAGE_INCLUDE"), env_patterns("AFLOW_PACKAGE_EXCLUDE")
        )
    )
    for warning in package.warnings:
        print(f"[aflow] warning: {warning}", file=sys.stderr)
    key = blob_key(ctx.flow_name, package.digest)
    if not await ctx.store.exists(key):
        await ctx.store.put(key, [package.data])
    return CodeRef(key, package.digest)


async def presigned(store: ObjectStore, key: str, seconds: int) -> str | None:
    """A URL that reads `key` without credentials for `seconds`, where the store can make one."""
    return await store.presigned_url(key, seconds)


def chunks(items: list[Any], size: int) -> Iterable[list[Any]]:
    for i in range(0, len(items), size):
        yield items[i : i + size]
