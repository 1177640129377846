"""An AWS Batch control plane for the tests: a real HTTP server speaking Batch's REST-JSON API.

There is no AWS here and moto's Batch cannot run a task without Docker, so this module emulates
the part of Batch a backend talks to, over the wire, as botocore / aioboto3 call it:

    RegisterJobDefinition, DeregisterJobDefinition, DescribeJobDefinitions, SubmitJob (plain and
    array jobs, dependsOn, retryStrategy, timeout), DescribeJobs, ListJobs, TerminateJob, CancelJob,
    CreateJobQueue, DescribeJobQueues.

A submitted job runs its container command (the job definition's, or containerOverrides.command)
as a LOCAL PROCESS in a fresh working directory, with the environment a container on Batch gets
(AWS_BATCH_JOB_ID, AWS_BATCH_JQ_NAME, AWS_BATCH_CE_NAME, AWS_BATCH_JOB_ATTEMPT and, for array
children, AWS_BATCH_JOB_ARRAY_INDEX / AWS_BATCH_JOB_ARRAY_SIZE). The image is recorded, not used.
Jobs move through SUBMITTED -> PENDING -> RUNNABLE -> STARTING -> RUNNING -> SUCCEEDED | FAILED
with a small settable delay per step; at most `parallelism` processes run at once, the others wait
in RUNNABLE as they would for compute capacity. Output lines (stdout and stderr, one stream) go to
CloudWatch Logs on a real server (moto's), group "/aws/batch/job", stream
"<jobDefinitionName>/default/<ecs task id>" as on Batch (a fresh task id per attempt; the stream is
in container.logStreamName), line by line as they are printed.

Every request is recorded (`FakeBatch.requests`); hooks hold jobs in RUNNABLE, evict a host,
OOM-kill a container, throttle calls. The `batch_endpoint` pytest fixture yields a started FakeBatch.
The server runs in a background thread of the test process (an aiohttp app on its own event loop).
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import copy
import fnmatch
import json
import os
import queue
import re
import secrets
import signal
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web

from . import aws_schema

STATUSES = ("SUBMITTED", "PENDING", "RUNNABLE", "STARTING", "RUNNING", "SUCCEEDED", "FAILED")
FINAL = ("SUCCEEDED", "FAILED")
ESSENTIAL_EXITED = "Essential container in task exited"
TIMEOUT_REASON = "Job attempt duration exceeded timeout"
OOM_REASON = "OutOfMemoryError: Container killed due to memory usage"
DEFAULT_LOG_GROUP = "/aws/batch/job"
MAX_LINE = 16 * 1024  # Docker's log drivers split longer lines into 16 KiB pieces
RESERVED_ENV_PREFIX = "AWS_BATCH"
CREDENTIAL_VARS = ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN")
# Batch hands a job's command and environment to ECS RunTask as container overrides, capped at
# 8,192 characters of JSON (ECS API reference, RunTask overrides; Cromwell's AWS backend docs,
# hyp3 #3041, Metaflow #977/#1482 report the statusReason below).
OVERRIDES_LIMIT = 8192
OVERRIDES_REASON = "Container Overrides length must be at most 8192"

_JOB_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_-]{0,127}$")
_DEF_NAME = re.compile(r"^[A-Za-z0-9_-]{1,128}$")

# request path -> operation name, as in botocore's batch service model
_OPERATIONS = {
    "/v1/registerjobdefinition": "RegisterJobDefinition",
    "/v1/deregisterjobdefinition": "DeregisterJobDefinition",
    "/v1/describejobdefinitions": "DescribeJobDefinitions",
    "/v1/submitjob": "SubmitJob",
    "/v1/describejobs": "DescribeJobs",
    "/v1/listjobs": "ListJobs",
    "/v1/terminatejob": "TerminateJob",
    "/v1/canceljob": "CancelJob",
    "/v1/createjobqueue": "CreateJobQueue",
    "/v1/describejobqueues": "DescribeJobQueues",
    "/v1/describecomputeenvironments": "DescribeComputeEnvironments",
}


def _now_ms() -> int:
    return int(time.time() * 1000)


class BatchError(Exception):
    """An error answered the way Batch does: `x-amzn-ErrorType` header and {"message"} body."""

    def __init__(self, message: str, code: str = "ClientException", status: int = 400):
        super().__init__(message)
        self.code, self.message, self.status = code, message, status


@dataclass
class RecordedRequest:
    operation: str  # e.g. "SubmitJob"; the raw path for a request to an unknown path
    body: dict[str, Any]  # the parsed JSON body
    time: float
    status: int = 200  # the HTTP status answered


@dataclass
class ComputeEnvironment:
    """A managed compute environment: `kind` is its computeResources.type (EC2, SPOT, FARGATE,
    FARGATE_SPOT); jobs run on Fargate when it is FARGATE or FARGATE_SPOT."""

    name: str
    arn: str
    kind: str = "EC2"

    @property
    def fargate(self) -> bool:
        return self.kind in ("FARGATE", "FARGATE_SPOT")

    def describe(self) -> dict[str, Any]:
        resources: dict[str, Any] = {
            "type": self.kind,
            "maxvCpus": 256,
            "subnets": ["subnet-0123456789abcdef0"],
            "securityGroupIds": ["sg-0123456789abcdef0"],
        }
        if not self.fargate:
            resources.update(minvCpus=0, instanceTypes=["optimal"], instanceRole="ecsInstanceRole")
        return {
            "computeEnvironmentName": self.name,
            "computeEnvironmentArn": self.arn,
            "type": "MANAGED",
            "state": "ENABLED",
            "status": "VALID",
            "statusReason": "ComputeEnvironment Healthy",
            "computeResources": resources,
            "serviceRole": "arn:aws:iam::123456789012:role/aws-service-role/batch.amazonaws.com/"
            "AWSServiceRoleForBatch",
            "containerOrchestrationType": "ECS",
        }


@dataclass
class JobQueue:
    name: str
    arn: str
    ce_name: str
    ce_arn: str
    priority: int = 1
    state: str = "ENABLED"
    tags: dict[str, str] = field(default_factory=dict)

    def describe(self) -> dict[str, Any]:
        return {
            "jobQueueName": self.name,
            "jobQueueArn": self.arn,
            "state": self.state,
            "status": "VALID",
            "statusReason": "JobQueue Healthy",
            "priority": self.priority,
            "computeEnvironmentOrder": [{"order": 1, "computeEnvironment": self.ce_arn}],
            "tags": self.tags,
            "jobStateTimeLimitActions": [],
        }


@dataclass
class JobDefinition:
    name: str
    revision: int
    arn: str
    body: dict[str, Any]  # the RegisterJobDefinition request
    status: str = "ACTIVE"

    def describe(self) -> dict[str, Any]:
        out = {
            "jobDefinitionName": self.name,
            "jobDefinitionArn": self.arn,
            "revision": self.revision,
            "status": self.status,
            "type": self.body.get("type", "container"),
            "parameters": self.body.get("parameters") or {},
            "containerProperties": self.body.get("containerProperties") or {},
            "tags": self.body.get("tags") or {},
            "propagateTags": bool(self.body.get("propagateTags", False)),
            "platformCapabilities": self.body.get("platformCapabilities") or ["EC2"],
            "containerOrchestrationType": "ECS",
        }
        for key in ("retryStrategy", "timeout", "schedulingPriority"):
            if key in self.body:
                out[key] = self.body[key]
        return out


@dataclass
class Attempt:
    """One run of a job's container (a fresh ECS task, so a fresh log stream)."""

    task_id: str
    log_stream: str
    task_arn: str
    instance_id: str
    container_instance_arn: str
    number: int
    started_at: int | None = None
    stopped_at: int | None = None
    exit_code: int | None = None
    reason: str | None = None  # container.reason
    status_reason: str | None = None
    pid: int | None = None
    # set when the emulator kills the container: (statusReason, container reason, keep exit code)
    kill: tuple[str, str | None, bool] | None = None

    def describe(self) -> dict[str, Any]:
        container: dict[str, Any] = {
            "containerInstanceArn": self.container_instance_arn,
            "taskArn": self.task_arn,
            "logStreamName": self.log_stream,
            "networkInterfaces": [],
        }
        if self.exit_code is not None:
            container["exitCode"] = self.exit_code
        if self.reason:
            container["reason"] = self.reason
        out: dict[str, Any] = {"container": container, "taskProperties": []}
        if self.started_at is not None:
            out["startedAt"] = self.started_at
        if self.stopped_at is not None:
            out["stoppedAt"] = self.stopped_at
        if self.status_reason:
            out["statusReason"] = self.status_reason
        return out


@dataclass(eq=False)
class Job:
    job_id: str
    name: str
    arn: str
    queue: JobQueue
    definition: JobDefinition
    request: dict[str, Any] = field(repr=False)  # the SubmitJob request (an array child: the parent's)
    command: list[str]
    environment: dict[str, str]  # job definition's merged with containerOverrides'
    resource_requirements: list[dict[str, str]]
    container_properties: dict[str, Any] = field(repr=False)  # the definition's, overrides applied
    parameters: dict[str, str]
    retry_attempts: int
    evaluate_on_exit: list[dict[str, str]]
    timeout_seconds: int | None
    depends_on: list[Job] = field(repr=False)
    tags: dict[str, str]
    array_size: int | None = None  # set on an array parent
    index: int | None = None  # set on an array child
    parent: Job | None = field(default=None, repr=False)
    children: list[Job] = field(default_factory=list, repr=False)
    status: str = "SUBMITTED"
    status_reason: str | None = None
    created_at: int = field(default_factory=_now_ms)
    started_at: int | None = None
    stopped_at: int | None = None
    attempts: list[Attempt] = field(default_factory=list, repr=False)
    history: list[tuple[str, int]] = field(default_factory=list)  # (status, ms) as they happened
    lines: list[str] = field(default_factory=list, repr=False)  # output lines, every attempt
    is_cancelled: bool = False
    is_terminated: bool = False
    counts: dict[str, int] = field(default_factory=dict)  # an array parent's children per status
    _kill_reason: str | None = None  # TerminateJob/CancelJob: final, never retried
    _task: asyncio.Task | None = field(default=None, repr=False)
    _proc: asyncio.subprocess.Process | None = field(default=None, repr=False)
    _done: asyncio.Event | None = field(default=None, repr=False)

    @property
    def attempt(self) -> Attempt | None:
        return self.attempts[-1] if self.attempts else None

    @property
    def log_stream_name(self) -> str | None:
        return self.attempt.log_stream if self.attempt else None

    @property
    def exit_code(self) -> int | None:
        return self.attempt.exit_code if self.attempt else None

    @property
    def states(self) -> list[str]:
        return [s for s, _ in self.history]

    def resource(self, kind: str) -> str | None:
        """The VCPU / MEMORY / GPU value the job asked for (a string, as on the wire)."""
        for r in self.resource_requirements:
            if r.get("type") == kind:
                return r.get("value")
        return None


def _env_list(items: Any, where: str) -> dict[str, str]:
    env: dict[str, str] = {}
    for item in items or []:
        name = item.get("name")
        if not name:
            raise BatchError(f"{where}: an environment variable without a name")
        if name.startswith(RESERVED_ENV_PREFIX):
            raise BatchError(
                f"{where}: environment variable {name}: names starting with "
                f"{RESERVED_ENV_PREFIX} are reserved"
            )
        env[name] = str(item.get("value", ""))
    return env


def _check_resources(items: Any, where: str) -> list[dict[str, str]]:
    out = []
    for r in items or []:
        kind, value = r.get("type"), r.get("value")
        if kind not in ("GPU", "VCPU", "MEMORY"):
            raise BatchError(f"{where}: resourceRequirements type {kind!r} is not GPU, VCPU or MEMORY")
        if not isinstance(value, str):
            raise BatchError(f"{where}: resourceRequirements value for {kind} must be a string")
        try:
            number = float(value)
        except ValueError:
            raise BatchError(f"{where}: {kind} value {value!r} is not a number") from None
        if number <= 0 or (kind != "VCPU" and number != int(number)):
            raise BatchError(f"{where}: resourceRequirements value {value!r} for {kind} is invalid")
        out.append({"type": kind, "value": value})
    return out


def _check_fargate(props: dict[str, Any], resources: list[dict[str, str]]) -> None:
    """What Batch refuses in a Fargate job definition (RegisterJobDefinition, ContainerProperties
    and ResourceRequirement in the API reference; the vCPU/memory table is read from botocore's
    own `batch` model)."""
    if not props.get("executionRoleArn"):
        raise BatchError(
            "containerProperties.executionRoleArn is required for jobs that run on Fargate resources"
        )
    got = {r["type"]: r["value"] for r in resources}
    if "GPU" in got:
        raise BatchError("GPUs aren't available for jobs that are running on Fargate resources")
    if (props.get("linuxParameters") or {}).get("sharedMemorySize") is not None:
        raise BatchError(
            "linuxParameters.sharedMemorySize isn't applicable to jobs that are running on Fargate "
            "resources"
        )
    pairs = aws_schema.fargate_pairs()
    try:
        vcpu, memory = float(got["VCPU"]), int(got["MEMORY"])
    except (KeyError, ValueError):
        raise BatchError(
            "Fargate jobs need VCPU and MEMORY in containerProperties.resourceRequirements"
        ) from None
    if vcpu not in pairs or memory not in pairs[vcpu]:
        raise BatchError(
            f"Fargate resources VCPU {got['VCPU']} and MEMORY {got['MEMORY']} are not a supported "
            f"combination (for VCPU {got['VCPU']}: MEMORY one of "
            f"{', '.join(map(str, sorted(pairs.get(vcpu, ()))) or 'none: VCPU is not supported')})"
        )


def _merge_resources(base: list[dict], override: list[dict]) -> list[dict]:
    merged = {r["type"]: r for r in base}
    merged.update({r["type"]: r for r in override})
    return list(merged.values())


def _legacy_resources(props: dict[str, Any]) -> list[dict[str, str]]:
    out = []
    if props.get("vcpus"):
        out.append({"type": "VCPU", "value": str(props["vcpus"])})
    if props.get("memory"):
        out.append({"type": "MEMORY", "value": str(props["memory"])})
    return out


def _matches(pattern: str | None, value: str | None) -> bool:
    return pattern is None or fnmatch.fnmatchcase(value or "", pattern)


class _LogShipper(threading.Thread):
    """Writes output lines to CloudWatch Logs (put_log_events) as they come, in a thread of its own."""

    def __init__(self, endpoint: str, region: str, errors: list[str]):
        super().__init__(name="fake-batch-logs", daemon=True)
        import boto3

        self.client = boto3.client(
            "logs",
            endpoint_url=endpoint,
            region_name=region,
            aws_access_key_id="testing",
            aws_secret_access_key="testing",
        )
        self.q: queue.Queue = queue.Queue()
        self.errors = errors
        self._groups: set[str] = set()
        self._streams: set[tuple[str, str]] = set()
        # A first call here, in the caller's thread, so that botocore's lazy imports happen now
        # and not in this thread while the test thread imports too (CPython 3.11's compiler is
        # not safe against that: "AST constructor recursion depth mismatch").
        with contextlib.suppress(self.client.exceptions.ResourceAlreadyExistsException):
            self.client.create_log_group(logGroupName=DEFAULT_LOG_GROUP)
        self._groups.add(DEFAULT_LOG_GROUP)

    def event(self, group: str, stream: str, ts: int, message: str) -> None:
        self.q.put(("e", group, stream, ts, message))

    def flush(self, callback: Callable[[], None]) -> None:
        """Call `callback` (in this thread) once every event put so far is written."""
        self.q.put(("f", callback))

    def stop(self) -> None:
        self.q.put(None)
        self.join(timeout=10)

    def run(self) -> None:
        while True:
            items = [self.q.get()]
            while len(items) < 20000:
                try:
                    items.append(self.q.get_nowait())
                except queue.Empty:
                    break
            events: dict[tuple[str, str], list[dict]] = {}
            callbacks = []
            stop = False
            for item in items:
                if item is None:
                    stop = True
                elif item[0] == "e":
                    events.setdefault((item[1], item[2]), []).append(
                        {"timestamp": item[3], "message": item[4]}
                    )
                else:
                    callbacks.append(item[1])
            for (group, stream), evs in events.items():
                try:
                    self._put(group, stream, evs)
                except Exception as e:  # recorded for the tests, never fatal to the server
                    self.errors.append(f"put_log_events {group} {stream}: {e!r}")
            for cb in callbacks:
                cb()
            if stop:
                return

    def _put(self, group: str, stream: str, events: list[dict]) -> None:
        c = self.client
        if group not in self._groups:
            with contextlib.suppress(c.exceptions.ResourceAlreadyExistsException):
                c.create_log_group(logGroupName=group)
            self._groups.add(group)
        if (group, stream) not in self._streams:
            with contextlib.suppress(c.exceptions.ResourceAlreadyExistsException):
                c.create_log_stream(logGroupName=group, logStreamName=stream)
            self._streams.add((group, stream))
        events.sort(key=lambda e: e["timestamp"])  # stable: lines keep their order
        chunk: list[dict] = []
        size = 0
        for ev in events:
            ev_size = len(ev["message"].encode()) + 26
            if chunk and (len(chunk) >= 10000 or size + ev_size > 1_000_000):
                c.put_log_events(logGroupName=group, logStreamName=stream, logEvents=chunk)
                chunk, size = [], 0
            chunk.append(ev)
            size += ev_size
        if chunk:
            c.put_log_events(logGroupName=group, logStreamName=stream, logEvents=chunk)


class FakeBatch:
    """The emulated Batch control plane. Start it, point clients at `.url`, stop it.

    Settable at any time: `parallelism` (processes running at once), `state_delay` (seconds per
    state change), `kill_grace` (SIGTERM -> SIGKILL on terminate), `base_env` (the environment
    every container starts from: PATH with this interpreter first, HOME, LANG, fake credentials
    and region standing for the job role; add e.g. an S3 endpoint here if a test wants the
    platform to provide it), `inherit_env` (start from this process's environment instead),
    `auto_create_queues` (accept any queue name; by default only created queues, as on AWS),
    `child_spawn_delay` (seconds before an array's children exist; the parent stays
    SUBMITTED meanwhile), `instance_role` (containers of jobs without a jobRoleArn get the
    credentials too, as from an instance role; by default they get none, as on a compute
    environment that blocks IMDS), `container_wrapper` (argv put before every container's command,
    e.g. `unshare`/`setpriv` to run it as PID 1, as another user or on a read-only root).
    """

    def __init__(
        self,
        *,
        logs_endpoint: str | None = None,
        workdir: str | Path | None = None,
        region: str = "us-east-1",
        account: str = "123456789012",
        parallelism: int = 4,
        state_delay: float = 0.02,
        kill_grace: float = 1.0,
        queue_name: str | None = "aflow-test-queue",
        ce_name: str = "aflow-test-ce",
    ):
        self.logs_endpoint = logs_endpoint
        self.region, self.account = region, account
        self.parallelism = parallelism
        self.state_delay = state_delay
        self.kill_grace = kill_grace
        self.auto_create_queues = False
        self.inherit_env = False
        self.instance_role = False
        self.child_spawn_delay = 0.0
        self.container_wrapper: list[str] = []
        # CloudWatch Logs in front of moto's (`logs_url`): GetLogEvents is an account-wide quota
        # (25 transactions a second per account and Region, CloudWatch Logs quotas page) shared
        # with everyone, and a page may be empty before the end of a stream (the end is a
        # nextForwardToken equal to the one sent: GetLogEvents API reference).
        self.logs_rate = 25.0
        self.logs_empty_every = 0  # every Nth GetLogEvents answers an empty page mid-stream
        self.logs_calls: collections.Counter[str] = collections.Counter()
        self._logs_bucket = (self.logs_rate, time.monotonic())
        self._logs_client: Any = None
        self.logs_url = ""
        self.default_ce = ce_name
        self.workdir = (
            Path(workdir)
            if workdir
            else Path(os.environ.get("TMPDIR", "/tmp")) / f"fake-batch-{uuid.uuid4().hex[:8]}"
        )
        self.base_env: dict[str, str] = {
            "PATH": os.pathsep.join(
                [os.path.dirname(sys.executable), "/usr/local/bin", "/usr/bin", "/bin"]
            ),
            "HOME": os.environ.get("HOME", "/root"),
            "LANG": "C.UTF-8",
            "AWS_ACCESS_KEY_ID": "testing",
            "AWS_SECRET_ACCESS_KEY": "testing",
            "AWS_DEFAULT_REGION": region,
            "AWS_REGION": region,
            "AWS_EXECUTION_ENV": "AWS_ECS_EC2",
        }
        self.requests: list[RecordedRequest] = []
        self.log_errors: list[str] = []  # CloudWatch writes that failed
        self.schema_errors: list[str] = []  # requests botocore's batch model does not allow
        self.server_errors: list[str] = []  # unexpected exceptions answered with a 500
        self.peak_running = 0  # the most processes that ran at once
        self.url = ""
        self._jobs: dict[str, Job] = {}
        self._defs: dict[str, list[JobDefinition]] = {}
        self._queues: dict[str, JobQueue] = {}
        self._environments: dict[str, ComputeEnvironment] = {}
        self._hold: Callable[[Job], bool] | None = None
        self._released: set[str] = set()
        self._injections: list[dict[str, Any]] = []
        self._throttles: list[list] = []
        self._waiting: collections.deque = collections.deque()
        self._running = 0
        self._closing = False
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._runner: web.AppRunner | None = None
        self._shipper: _LogShipper | None = None
        self._procs: set[asyncio.subprocess.Process] = set()  # started, not yet reaped
        if queue_name:
            self.add_queue(queue_name, ce_name)

    # ---------------------------------------------------------------- lifecycle

    def start(self) -> FakeBatch:
        self.workdir.mkdir(parents=True, exist_ok=True)
        if self.logs_endpoint:
            self._shipper = _LogShipper(self.logs_endpoint, self.region, self.log_errors)
            self._shipper.start()
        ready = threading.Event()
        failure: list[BaseException] = []

        def main() -> None:
            loop = asyncio.new_event_loop()
            asyncio.set_event_loop(loop)
            self._loop = loop
            try:
                loop.run_until_complete(self._serve())
            except BaseException as e:
                failure.append(e)
                ready.set()
                return
            ready.set()
            loop.run_forever()
            loop.close()

        self._thread = threading.Thread(target=main, name="fake-batch", daemon=True)
        self._thread.start()
        ready.wait(30)
        if failure:
            raise failure[0]
        return self

    async def _serve(self) -> None:
        app = web.Application(client_max_size=16 * 1024 * 1024)
        app.router.add_route("POST", "/logs", self._logs_front)
        app.router.add_route("POST", "/logs/", self._logs_front)
        app.router.add_route("*", "/{tail:.*}", self._handle)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        port = self._runner.addresses[0][1]
        self.url = f"http://127.0.0.1:{port}"
        self.logs_url = f"{self.url}/logs"

    def stop(self) -> None:
        """Kill every process still running, stop the server and the log writer."""
        if self._loop is None:
            return
        with contextlib.suppress(Exception):
            asyncio.run_coroutine_threadsafe(self._shutdown(), self._loop).result(30)
        self._loop.call_soon_threadsafe(self._loop.stop)
        if self._thread:
            self._thread.join(10)
        if self._shipper:
            self._shipper.stop()
        self._loop = None

    async def _shutdown(self) -> None:
        self._closing = True
        for job in list(self._jobs.values()):
            if job._proc is not None and job._proc.returncode is None:
                self._signal_group(job._proc, signal.SIGKILL)
        tasks = [j._task for j in self._jobs.values() if j._task and not j._task.done()]
        for t in tasks:
            t.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        if self._runner:
            await self._runner.cleanup()
        if self._logs_client is not None:
            await self._logs_client.close()
        for proc in self._procs:  # close the pipes now, not when the loop is gone
            transport = getattr(proc, "_transport", None)
            if transport is not None and not transport.is_closing():
                transport.close()
        await asyncio.sleep(0.01)

    def __enter__(self) -> FakeBatch:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # ---------------------------------------------------------------- for the tests (any thread)

    @property
    def jobs(self) -> dict[str, Job]:
        """Every job by id, array parents and children alike (a snapshot of the dict)."""
        return dict(self._jobs)

    def job(self, job_id: str) -> Job:
        return self._jobs[job_id]

    def calls(self, operation: str) -> list[dict[str, Any]]:
        """The JSON bodies of the recorded requests for one operation, in order."""
        return [r.body for r in list(self.requests) if r.operation == operation]

    def log_lines(self, job_id: str) -> list[str]:
        """Output lines of a job (every attempt), as written to CloudWatch Logs."""
        return list(self._jobs[job_id].lines)

    def wait(self, job_id: str, statuses: tuple[str, ...] = FINAL, timeout: float = 30) -> Job:
        """Block until the job is in one of `statuses`."""
        deadline = time.monotonic() + timeout
        while self._jobs[job_id].status not in statuses:
            if time.monotonic() > deadline:
                raise TimeoutError(f"job {job_id} is {self._jobs[job_id].status}, not in {statuses}")
            time.sleep(0.01)
        return self._jobs[job_id]

    def active_jobs(self) -> list[Job]:
        """Jobs (not array parents) not yet SUCCEEDED or FAILED."""
        return [j for j in list(self._jobs.values()) if j.status not in FINAL and j.array_size is None]

    def live_processes(self) -> list[int]:
        """Pids of job processes still alive."""
        return [
            j._proc.pid
            for j in list(self._jobs.values())
            if j._proc is not None and j._proc.returncode is None
        ]

    def add_queue(self, name: str, ce_name: str | None = None, ce_kind: str | None = None) -> JobQueue:
        """A job queue over one compute environment, made if new (`ce_kind`: EC2 by default,
        or SPOT, FARGATE, FARGATE_SPOT)."""
        ce = ce_name or self.default_ce
        arn = f"arn:aws:batch:{self.region}:{self.account}:compute-environment/{ce}"
        if ce not in self._environments:
            self._environments[ce] = ComputeEnvironment(ce, arn, ce_kind or "EC2")
        elif ce_kind:
            self._environments[ce].kind = ce_kind
        q = JobQueue(
            name=name,
            arn=f"arn:aws:batch:{self.region}:{self.account}:job-queue/{name}",
            ce_name=ce,
            ce_arn=arn,
        )
        self._queues[name] = q
        return q

    def hold_runnable(self, match: Callable[[Job], bool] | None = None) -> None:
        """Keep jobs (all, or those `match(job)` accepts) in RUNNABLE until `release`."""
        self._hold = match or (lambda job: True)
        self._released.clear()

    def release(self, job_id: str | None = None) -> None:
        """Let held jobs go: all (and stop holding), or one job (an array parent: its children)."""
        if job_id is None:
            self._hold = None
        else:
            job = self._jobs[job_id]
            self._released.update([job_id, *(c.job_id for c in job.children)])
        self._call(self._pump)

    def evict(self, job_id: str, instance_id: str | None = None) -> None:
        """The host of a running job goes away: FAILED, "Host EC2 (instance i-...) terminated."."""
        self._call(self._inject, self._jobs[job_id], None, "eviction", instance_id)

    def oom_kill(self, job_id: str) -> None:
        """The container of a running job is killed for using too much memory (exit code 137)."""
        self._call(self._inject, self._jobs[job_id], None, "oom", None)

    def inject_failure(
        self,
        kind: str = "eviction",
        count: int = 1,
        match: Callable[[Job], bool] | None = None,
        after: float = 0.05,
    ) -> None:
        """The next `count` jobs (matching `match`) to reach RUNNING fail `after` seconds later,
        by host eviction ("eviction") or out of memory ("oom")."""
        if kind not in ("eviction", "oom"):
            raise ValueError(f"unknown failure kind {kind!r}")
        self._injections.append({"kind": kind, "count": count, "match": match, "after": after})

    def throttle(self, count: int = 1, operation: str | None = None) -> None:
        """Answer the next `count` requests (of `operation`, or any) with 429 TooManyRequests."""
        self._throttles.append([count, operation])

    def describe(self, job_id: str) -> dict[str, Any]:
        """The job as DescribeJobs would return it."""
        return self._call(self._describe_job, self._jobs[job_id])

    def _call(self, fn: Callable, *args: Any) -> Any:
        async def run() -> Any:
            return fn(*args)

        assert self._loop is not None, "FakeBatch is not started"
        return asyncio.run_coroutine_threadsafe(run(), self._loop).result(10)

    # ---------------------------------------------------------------- HTTP

    async def _handle(self, request: web.Request) -> web.Response:
        raw = await request.read()
        path = request.path.rstrip("/").lower()
        operation = _OPERATIONS.get(path)
        try:
            body = json.loads(raw) if raw.strip() else {}
        except ValueError:
            body = None
        parsed = body if isinstance(body, dict) else {}
        record = RecordedRequest(operation or request.path, parsed, time.time())
        self.requests.append(record)
        try:
            if request.method != "POST" or operation is None:
                raise BatchError(f"{request.method} {request.path}: not an operation emulated here")
            if not isinstance(body, dict):
                raise BatchError("the request body is not a JSON object")
            for t in self._throttles:
                if t[0] > 0 and t[1] in (None, operation):
                    t[0] -= 1
                    raise BatchError("Too Many Requests", "TooManyRequestsException", 429)
            wrong = aws_schema.problems("batch", operation, body)
            if wrong:  # as Batch's front end answers a request its model does not allow
                self.schema_errors.extend(wrong)
                raise BatchError("; ".join(wrong[:5]))
            result = getattr(self, f"_op_{operation}")(body)
            return web.json_response(result, headers={"x-amzn-RequestId": str(uuid.uuid4())})
        except BatchError as e:
            record.status = e.status
            return web.json_response(
                {"__type": e.code, "message": e.message},
                status=e.status,
                headers={"x-amzn-ErrorType": e.code, "x-amzn-RequestId": str(uuid.uuid4())},
            )
        except Exception as e:
            record.status = 500
            self.server_errors.append(f"{operation}: {e!r}")
            return web.json_response(
                {"__type": "ServerException", "message": repr(e)},
                status=500,
                headers={"x-amzn-ErrorType": "ServerException"},
            )

    async def _logs_front(self, request: web.Request) -> web.Response:
        """CloudWatch Logs as the backend sees it: checked against botocore's `logs` model,
        GetLogEvents throttled at the account rate and paged with empty pages, the rest passed
        on to moto's server."""
        import aiohttp

        raw = await request.read()
        op = request.headers.get("X-Amz-Target", "").rpartition(".")[2]
        self.logs_calls[op] += 1
        try:
            body = json.loads(raw or b"{}")
        except ValueError:
            body = None
        self.requests.append(
            RecordedRequest(f"logs:{op}", body if isinstance(body, dict) else {}, time.time())
        )

        def error(code: str, message: str) -> web.Response:
            return web.json_response({"__type": code, "message": message}, status=400)

        wrong = aws_schema.problems("logs", op, body) if op else ["no X-Amz-Target"]
        if wrong:
            self.schema_errors.extend(wrong)
            return error("InvalidParameterException", "; ".join(wrong[:5]))
        if op == "GetLogEvents":
            tokens, then = self._logs_bucket
            now = time.monotonic()
            tokens = min(self.logs_rate, tokens + (now - then) * self.logs_rate)
            if tokens < 1:
                self._logs_bucket = (tokens, now)
                return error("ThrottlingException", "Rate exceeded")
            self._logs_bucket = (tokens - 1, now)
            token = sent = body.get("nextToken") or ""
            if token.startswith("aflow-empty:"):  # after an empty page: go on where it was
                body.pop("nextToken")
                if token.removeprefix("aflow-empty:"):
                    body["nextToken"] = token.removeprefix("aflow-empty:")
                raw = json.dumps(body).encode()
            elif self.logs_empty_every and self.logs_calls[op] % self.logs_empty_every == 0:
                following = f"aflow-empty:{token}"
                return web.json_response(
                    {"events": [], "nextForwardToken": following, "nextBackwardToken": "b/0"}
                )
        if self._logs_client is None:
            self._logs_client = aiohttp.ClientSession()
        headers = {
            k: v for k, v in request.headers.items() if k.lower() not in ("host", "content-length")
        }
        async with self._logs_client.post(f"{self.logs_endpoint}/", data=raw, headers=headers) as r:
            data = await r.read()
            status, content_type = r.status, r.content_type
        if op == "GetLogEvents" and status == 200 and sent.startswith("aflow-empty:"):
            answer = json.loads(data)
            if answer.get("nextForwardToken") in (None, body.get("nextToken")):
                answer["nextForwardToken"] = sent  # the end: the token the client sent, back
            data = json.dumps(answer).encode()
        return web.Response(body=data, status=status, content_type=content_type)

    # ---------------------------------------------------------------- job definitions and queues

    def _op_RegisterJobDefinition(self, body: dict) -> dict:
        name = body.get("jobDefinitionName")
        if not isinstance(name, str) or not _DEF_NAME.match(name):
            raise BatchError(
                f"jobDefinitionName {name!r}: up to 128 letters, numbers, hyphens and underscores"
            )
        if body.get("type") != "container":
            raise BatchError(f"job definition type {body.get('type')!r}: only 'container' is emulated")
        props = body.get("containerProperties")
        if not isinstance(props, dict) or not props.get("image"):
            raise BatchError("containerProperties with an image is required for a container job")
        _env_list(props.get("environment"), "containerProperties")
        resources = _check_resources(props.get("resourceRequirements"), "containerProperties")
        if "FARGATE" in (body.get("platformCapabilities") or ["EC2"]):
            _check_fargate(props, resources)
        else:
            for r in resources:
                if r["type"] == "VCPU" and float(r["value"]) != int(float(r["value"])):
                    # EC2 resources take whole vCPUs (RegisterJobDefinition, ResourceRequirement)
                    raise BatchError(
                        f"containerProperties: VCPU value {r['value']!r} must be a whole number for "
                        "jobs that run on EC2 resources"
                    )
            for fargate_only in ("networkConfiguration", "fargatePlatformConfiguration"):
                if fargate_only in props:
                    # "Jobs that are running on Amazon EC2 resources must not specify this parameter."
                    raise BatchError(
                        f"containerProperties.{fargate_only} is only for jobs that run on Fargate "
                        "resources (platformCapabilities FARGATE)"
                    )
        self._check_retry(body.get("retryStrategy"))
        revision = len(self._defs.get(name, [])) + 1
        arn = f"arn:aws:batch:{self.region}:{self.account}:job-definition/{name}:{revision}"
        self._defs.setdefault(name, []).append(JobDefinition(name, revision, arn, copy.deepcopy(body)))
        return {"jobDefinitionName": name, "jobDefinitionArn": arn, "revision": revision}

    def _op_DeregisterJobDefinition(self, body: dict) -> dict:
        self._find_def(body.get("jobDefinition", ""), any_status=True).status = "INACTIVE"
        return {}

    def _find_def(self, ref: str, any_status: bool = False) -> JobDefinition:
        if not isinstance(ref, str) or not ref:
            raise BatchError("jobDefinition is required")
        spec = ref.split("job-definition/", 1)[1] if ref.startswith("arn:") else ref
        name, _, rev = spec.partition(":")
        revisions = self._defs.get(name, [])
        if rev:
            found = [d for d in revisions if str(d.revision) == rev]
        else:
            found = [d for d in revisions if d.status == "ACTIVE"][-1:]
        if not found or (not any_status and found[0].status != "ACTIVE"):
            raise BatchError(f"Job definition {ref} does not exist")
        return found[0]

    def _op_DescribeJobDefinitions(self, body: dict) -> dict:
        defs = [d for revisions in self._defs.values() for d in revisions]
        if body.get("jobDefinitions"):
            wanted = []
            for ref in body["jobDefinitions"]:
                with contextlib.suppress(BatchError):
                    spec = ref.split("job-definition/", 1)[1] if ref.startswith("arn:") else ref
                    if ":" in spec:
                        wanted.append(self._find_def(ref, any_status=True))
                    else:
                        wanted.extend(self._defs.get(spec, []))
            defs = wanted
        if body.get("jobDefinitionName"):
            defs = [d for d in defs if d.name == body["jobDefinitionName"]]
        if body.get("status"):
            defs = [d for d in defs if d.status == body["status"]]
        page, token = self._page(defs, body, default=100)
        out: dict[str, Any] = {"jobDefinitions": [d.describe() for d in page]}
        if token:
            out["nextToken"] = token
        return out

    @staticmethod
    def _page(items: list, body: dict, default: int) -> tuple[list, str | None]:
        start = int(body.get("nextToken") or 0)
        size = int(body.get("maxResults") or default)
        end = start + size
        return items[start:end], (str(end) if end < len(items) else None)

    def _op_CreateJobQueue(self, body: dict) -> dict:
        name = body.get("jobQueueName")
        if not isinstance(name, str) or not _DEF_NAME.match(name):
            raise BatchError(f"jobQueueName {name!r} is invalid")
        if name in self._queues:
            raise BatchError("Object already exists")
        order = body.get("computeEnvironmentOrder") or []
        ce = order[0]["computeEnvironment"].rsplit("/", 1)[-1] if order else self.default_ce
        q = self.add_queue(name, ce)
        q.priority = int(body.get("priority", 1))
        q.state = body.get("state", "ENABLED")
        q.tags = body.get("tags") or {}
        return {"jobQueueName": q.name, "jobQueueArn": q.arn}

    def _op_DescribeJobQueues(self, body: dict) -> dict:
        queues = list(self._queues.values())
        if body.get("jobQueues"):
            wanted = set(body["jobQueues"])
            queues = [q for q in queues if q.name in wanted or q.arn in wanted]
        page, token = self._page(queues, body, default=100)
        out: dict[str, Any] = {"jobQueues": [q.describe() for q in page]}
        if token:
            out["nextToken"] = token
        return out

    def _op_DescribeComputeEnvironments(self, body: dict) -> dict:
        envs = list(self._environments.values())
        if body.get("computeEnvironments"):
            wanted = set(body["computeEnvironments"])
            envs = [e for e in envs if e.name in wanted or e.arn in wanted]
        page, token = self._page(envs, body, default=100)
        out: dict[str, Any] = {"computeEnvironments": [e.describe() for e in page]}
        if token:
            out["nextToken"] = token
        return out

    def _find_queue(self, ref: Any) -> JobQueue:
        if not isinstance(ref, str) or not ref:
            raise BatchError("jobQueue is required")
        name = ref.rsplit("job-queue/", 1)[-1]
        if name not in self._queues:
            if not self.auto_create_queues:
                raise BatchError(f"Job Queue {ref} does not exist")
            self.add_queue(name)
        q = self._queues[name]
        if q.state != "ENABLED":
            raise BatchError(f"Job Queue {ref} is not ENABLED")
        return q

    @staticmethod
    def _check_retry(retry: Any) -> None:
        if retry is None:
            return
        attempts = retry.get("attempts", 1)
        if not isinstance(attempts, int) or not 1 <= attempts <= 10:
            raise BatchError("retryStrategy.attempts must be between 1 and 10")
        for cond in retry.get("evaluateOnExit") or []:
            if str(cond.get("action", "")).upper() not in ("RETRY", "EXIT"):
                raise BatchError("evaluateOnExit action must be RETRY or EXIT")

    # ---------------------------------------------------------------- jobs: the API

    def _op_SubmitJob(self, body: dict) -> dict:
        name = body.get("jobName")
        if not isinstance(name, str) or not _JOB_NAME.match(name):
            raise BatchError(
                f"jobName {name!r}: up to 128 letters, numbers, hyphens and underscores, "
                "starting with a letter or a number"
            )
        q = self._find_queue(body.get("jobQueue"))
        jdef = self._find_def(body.get("jobDefinition"))
        wants = "FARGATE" if "FARGATE" in (jdef.body.get("platformCapabilities") or ["EC2"]) else "EC2"
        env_kind = self._environments[q.ce_name]
        if (wants == "FARGATE") != env_kind.fargate:
            # A queue serves EC2 or Fargate jobs, never both (Batch User Guide, "Job queues").
            raise BatchError(
                f"Job Queue {q.name} (compute environment {q.ce_name}, {env_kind.kind}) cannot run "
                f"job definition {jdef.name}: its platformCapabilities are {wants}"
            )
        props = copy.deepcopy(jdef.body["containerProperties"])
        over = body.get("containerOverrides") or {}
        env = _env_list(props.get("environment"), "containerProperties")
        env.update(_env_list(over.get("environment"), "containerOverrides"))
        asked = _check_resources(props.get("resourceRequirements"), "jobDefinition")
        overridden = _check_resources(over.get("resourceRequirements"), "containerOverrides")
        resources = _merge_resources(
            _merge_resources(_legacy_resources(props), asked),
            _merge_resources(_legacy_resources(over), overridden),
        )
        kinds = {r["type"] for r in resources}
        if not {"VCPU", "MEMORY"} <= kinds:
            raise BatchError(
                "vCPU and memory must be specified, in the job definition or in containerOverrides "
                f"(resourceRequirements has {sorted(kinds)})"
            )
        params = {**(jdef.body.get("parameters") or {}), **(body.get("parameters") or {})}
        command = [str(c) for c in (over.get("command") or props.get("command") or [])]
        for key, value in params.items():
            command = [c.replace(f"Ref::{key}", str(value)) for c in command]
        if over.get("instanceType"):
            props["instanceType"] = over["instanceType"]
        props.update(command=command, environment=[{"name": k, "value": v} for k, v in env.items()])
        props["resourceRequirements"] = resources
        retry = body.get("retryStrategy") or jdef.body.get("retryStrategy") or {}
        self._check_retry(retry)
        timeout = (body.get("timeout") or jdef.body.get("timeout") or {}).get("attemptDurationSeconds")
        size = (body.get("arrayProperties") or {}).get("size")
        if size is not None and (not isinstance(size, int) or not 2 <= size <= 10000):
            raise BatchError("arrayProperties.size must be between 2 and 10000")
        deps = []
        for d in body.get("dependsOn") or []:
            dep = self._jobs.get(d.get("jobId", ""))
            if dep is None:
                raise BatchError(f"dependsOn job {d.get('jobId')} does not exist")
            deps.append(dep)
        job_id = str(uuid.uuid4())
        common = dict(
            name=name,
            queue=q,
            definition=jdef,
            request=copy.deepcopy(body),
            command=command,
            environment=env,
            resource_requirements=resources,
            container_properties=props,
            parameters=params,
            retry_attempts=int(retry.get("attempts", 1)),
            evaluate_on_exit=list(retry.get("evaluateOnExit") or []),
            timeout_seconds=timeout,
            depends_on=deps,
            tags=body.get("tags") or {},
        )
        arn = f"arn:aws:batch:{self.region}:{self.account}:job/{job_id}"
        job = Job(job_id=job_id, arn=arn, array_size=size, **common)
        self._new(job)
        if size is None:
            job._task = asyncio.get_running_loop().create_task(self._run_job(job))
        else:
            job.counts = dict.fromkeys(STATUSES, 0)
            if self.child_spawn_delay > 0:
                # The parent spawns its children asynchronously, as on Batch (JobSummary.createdAt:
                # "when the child job was spawned by its parent"): until then none is describable.
                loop = asyncio.get_running_loop()
                loop.call_later(self.child_spawn_delay, self._spawn_children, job, common)
            else:
                self._spawn_children(job, common)
        return {"jobArn": arn, "jobName": name, "jobId": job_id}

    def _spawn_children(self, job: Job, common: dict[str, Any]) -> None:
        if self._closing:
            return
        assert job.array_size is not None
        for i in range(job.array_size):
            child = Job(job_id=f"{job.job_id}:{i}", arn=f"{job.arn}:{i}", index=i, parent=job, **common)
            job.children.append(child)
            job.counts["SUBMITTED"] += 1
            self._new(child)
            child._task = asyncio.get_running_loop().create_task(self._run_job(child))
        if job.status_reason and (job.is_terminated or job.is_cancelled):
            self._terminate(job, job.status_reason, job.is_cancelled)  # stopped before spawning

    def _new(self, job: Job) -> None:
        job._done = asyncio.Event()
        job.history.append(("SUBMITTED", job.created_at))
        self._jobs[job.job_id] = job

    def _lookup(self, ref: str) -> Job | None:
        if isinstance(ref, str) and ref.startswith("arn:"):
            ref = ref.rsplit("job/", 1)[-1]
        return self._jobs.get(ref)

    def _op_DescribeJobs(self, body: dict) -> dict:
        ids = body.get("jobs")
        if not isinstance(ids, list):
            raise BatchError("jobs (a list of job ids) is required")
        if len(ids) > 100:
            raise BatchError(f"DescribeJobs takes at most 100 job ids, not {len(ids)}")
        found = [self._lookup(i) for i in ids]
        return {"jobs": [self._describe_job(j) for j in found if j is not None]}

    def _describe_job(self, job: Job) -> dict[str, Any]:
        props = job.container_properties
        container: dict[str, Any] = {
            "image": props.get("image"),
            "command": job.command,
            "environment": [{"name": k, "value": v} for k, v in job.environment.items()],
            "resourceRequirements": job.resource_requirements,
            "volumes": props.get("volumes") or [],
            "mountPoints": props.get("mountPoints") or [],
            "ulimits": props.get("ulimits") or [],
            "secrets": props.get("secrets") or [],
            "networkInterfaces": [],
        }
        for key in (
            "vcpus",
            "memory",
            "jobRoleArn",
            "executionRoleArn",
            "user",
            "privileged",
            "readonlyRootFilesystem",
            "instanceType",
            "linuxParameters",
            "logConfiguration",
        ):
            if key in props:
                container[key] = props[key]
        a = job.attempt
        if a is not None:
            container["logStreamName"] = a.log_stream
            container["taskArn"] = a.task_arn
            container["containerInstanceArn"] = a.container_instance_arn
            if a.exit_code is not None:
                container["exitCode"] = a.exit_code
            if a.reason:
                container["reason"] = a.reason
        out: dict[str, Any] = {
            "jobArn": job.arn,
            "jobName": job.name,
            "jobId": job.job_id,
            "jobQueue": job.queue.arn,
            "status": job.status,
            "attempts": [x.describe() for x in job.attempts if x.stopped_at is not None],
            "createdAt": job.created_at,
            "dependsOn": [{"jobId": d.job_id} for d in job.depends_on],
            "jobDefinition": job.definition.arn,
            "parameters": job.parameters,
            "container": container,
            "tags": job.tags,
            "propagateTags": bool(job.request.get("propagateTags", False)),
            "platformCapabilities": ["EC2"],
            "eksAttempts": [],
            "isCancelled": job.is_cancelled,
            "isTerminated": job.is_terminated,
        }
        if job.status_reason:
            out["statusReason"] = job.status_reason
        if job.started_at is not None:
            out["startedAt"] = job.started_at
        if job.stopped_at is not None:
            out["stoppedAt"] = job.stopped_at
        if job.retry_attempts > 1 or job.evaluate_on_exit:
            out["retryStrategy"] = {
                "attempts": job.retry_attempts,
                "evaluateOnExit": job.evaluate_on_exit,
            }
        if job.timeout_seconds is not None:
            out["timeout"] = {"attemptDurationSeconds": job.timeout_seconds}
        if job.array_size is not None:
            out["arrayProperties"] = {"statusSummary": dict(job.counts), "size": job.array_size}
        elif job.index is not None:
            out["arrayProperties"] = {"index": job.index}
        return out

    def _op_ListJobs(self, body: dict) -> dict:
        if body.get("arrayJobId"):
            parent = self._jobs.get(body["arrayJobId"])
            if parent is None or parent.array_size is None:
                raise BatchError(f"Job {body['arrayJobId']} is not an array job")
            jobs = list(parent.children)
        elif body.get("jobQueue"):
            q = self._find_queue(body["jobQueue"])
            jobs = [j for j in self._jobs.values() if j.queue is q and j.parent is None]
        else:
            raise BatchError("one of jobQueue, arrayJobId or multiNodeJobId is required")
        filters = body.get("filters") or []
        if filters:  # with filters, jobStatus is ignored and every status is listed
            for f in filters:
                values = f.get("values") or []
                if f.get("name") == "JOB_NAME":
                    jobs = [j for j in jobs if any(fnmatch.fnmatchcase(j.name, v) for v in values)]
                elif f.get("name") == "JOB_DEFINITION":
                    jobs = [
                        j
                        for j in jobs
                        if any(fnmatch.fnmatchcase(v, "*" + j.definition.name + "*") for v in values)
                    ]
        else:
            status = body.get("jobStatus") or "RUNNING"
            jobs = [j for j in jobs if j.status == status]
        page, token = self._page(jobs, body, default=100)
        summaries = []
        for j in page:
            s: dict[str, Any] = {
                "jobArn": j.arn,
                "jobId": j.job_id,
                "jobName": j.name,
                "createdAt": j.created_at,
                "status": j.status,
                "jobDefinition": j.definition.arn,
            }
            if j.status_reason:
                s["statusReason"] = j.status_reason
            if j.started_at is not None:
                s["startedAt"] = j.started_at
            if j.stopped_at is not None:
                s["stoppedAt"] = j.stopped_at
            if j.attempt and j.attempt.stopped_at is not None:
                s["container"] = {
                    k: v
                    for k, v in (("exitCode", j.attempt.exit_code), ("reason", j.attempt.reason))
                    if v is not None
                }
            if j.array_size is not None:
                s["arrayProperties"] = {"size": j.array_size}
            elif j.index is not None:
                s["arrayProperties"] = {"index": j.index}
            summaries.append(s)
        out: dict[str, Any] = {"jobSummaryList": summaries}
        if token:
            out["nextToken"] = token
        return out

    def _op_TerminateJob(self, body: dict) -> dict:
        job, reason = self._job_and_reason(body)
        self._terminate(job, reason, cancel_only=False)
        return {}

    def _op_CancelJob(self, body: dict) -> dict:
        job, reason = self._job_and_reason(body)
        self._terminate(job, reason, cancel_only=True)
        return {}

    def _job_and_reason(self, body: dict) -> tuple[Job, str]:
        job = self._lookup(body.get("jobId", ""))
        reason = body.get("reason")
        if not isinstance(reason, str):
            raise BatchError("reason is required")
        if job is None:
            raise BatchError(f"Job {body.get('jobId')} does not exist")
        return job, reason

    # ---------------------------------------------------------------- jobs: running them

    def _terminate(self, job: Job, reason: str, cancel_only: bool) -> None:
        if job.array_size is not None:
            if job.status not in FINAL:
                job.status_reason = reason
                job.is_cancelled = job.is_cancelled or cancel_only
                job.is_terminated = job.is_terminated or not cancel_only
            for child in job.children:
                self._terminate(child, reason, cancel_only)
            return
        if job.status in FINAL or (cancel_only and job.status in ("STARTING", "RUNNING")):
            return  # CancelJob leaves started jobs alone, as on Batch
        job._kill_reason = reason
        if cancel_only:
            job.is_cancelled = True
        else:
            job.is_terminated = True
        proc = job._proc
        if proc is not None:  # running, or finishing: then it ends with its own outcome
            attempt = job.attempt
            if proc.returncode is None and attempt is not None and attempt.kill is None:
                attempt.kill = (reason, None, True)
                self._stop_process(proc)
        elif job.status in ("STARTING", "RUNNING"):
            pass  # the process is being started: _run_job / _run_attempt see _kill_reason
        elif job._task is not None:
            job._task.cancel()

    def _stop_process(self, proc: asyncio.subprocess.Process) -> None:
        """SIGTERM to the container's process group, SIGKILL after the grace period (`docker stop`)."""
        self._signal_group(proc, signal.SIGTERM)
        assert self._loop is not None
        self._loop.call_later(
            self.kill_grace,
            lambda: proc.returncode is None and self._signal_group(proc, signal.SIGKILL),
        )

    @staticmethod
    def _signal_group(proc: asyncio.subprocess.Process, sig: int) -> None:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(proc.pid, sig)

    def _inject(self, job: Job, attempt: Attempt | None, kind: str, instance_id: str | None) -> None:
        attempt = attempt or job.attempt
        proc = job._proc
        if attempt is None or job.attempt is not attempt or proc is None or proc.returncode is not None:
            return  # the attempt is over already
        if attempt.kill is not None:
            return
        if kind == "eviction":
            host = instance_id or attempt.instance_id
            attempt.kill = (f"Host EC2 (instance {host}) terminated.", None, False)
        else:
            attempt.kill = (ESSENTIAL_EXITED, OOM_REASON, True)
        self._signal_group(proc, signal.SIGKILL)

    def _set(self, job: Job, status: str, reason: str | None = None) -> None:
        old = job.status
        job.status = status
        if reason is not None:
            job.status_reason = reason
        job.history.append((status, _now_ms()))
        parent = job.parent
        if parent is None:
            return
        parent.counts[old] -= 1
        parent.counts[status] += 1
        if parent.status in FINAL:
            return
        if parent.counts["SUCCEEDED"] + parent.counts["FAILED"] == parent.array_size:
            parent.stopped_at = _now_ms()
            if parent.counts["FAILED"]:
                self._set(parent, "FAILED", parent.status_reason or "Array Child Job failed")
            else:
                self._set(parent, "SUCCEEDED")
            assert parent._done is not None
            parent._done.set()
        elif parent.status == "SUBMITTED" and status != "PENDING":
            self._set(parent, "PENDING")
        if status == "RUNNING" and parent.started_at is None:
            parent.started_at = job.started_at

    def _finish(self, job: Job, status: str, reason: str | None) -> None:
        job.stopped_at = _now_ms()
        self._set(job, status, reason)
        assert job._done is not None
        job._done.set()

    async def _sleep(self) -> None:
        if self.state_delay > 0:
            await asyncio.sleep(self.state_delay)

    def _is_held(self, job: Job) -> bool:
        return self._hold is not None and job.job_id not in self._released and bool(self._hold(job))

    def _pump(self) -> None:
        """Hand free slots to RUNNABLE jobs, first come first served, skipping held ones."""
        if not self._waiting or self._running >= self.parallelism:
            return
        kept: collections.deque = collections.deque()
        while self._waiting:
            job, fut = self._waiting.popleft()
            if fut.done():
                continue
            if self._running < self.parallelism and not self._is_held(job):
                self._running += 1
                self.peak_running = max(self.peak_running, self._running)
                fut.set_result(None)
            else:
                kept.append((job, fut))
                if self._running >= self.parallelism:
                    break
        kept.extend(self._waiting)
        self._waiting = kept

    async def _acquire_slot(self, job: Job) -> None:
        fut = asyncio.get_running_loop().create_future()
        self._waiting.append((job, fut))
        self._pump()
        try:
            await fut
        except asyncio.CancelledError:
            if fut.done() and not fut.cancelled():
                self._release_slot()
            fut.cancel()
            raise

    def _release_slot(self) -> None:
        self._running -= 1
        self._pump()

    async def _run_job(self, job: Job) -> None:
        try:
            await self._sleep()
            self._set(job, "PENDING")
            deps = list(job.depends_on)
            if job.parent is not None:
                deps += job.parent.depends_on
            for dep in deps:
                assert dep._done is not None
                await dep._done.wait()
                if dep.status != "SUCCEEDED":
                    self._finish(job, "FAILED", "Dependent Job failed")
                    return
            await self._sleep()
            number = 0
            while True:
                number += 1
                self._set(job, "RUNNABLE")
                await self._sleep()
                await self._acquire_slot(job)
                try:
                    if self._overrides_length(job, number) > OVERRIDES_LIMIT:
                        self._finish(job, "FAILED", OVERRIDES_REASON)  # ECS refused the task
                        return
                    self._set(job, "STARTING")
                    await self._sleep()
                    if job._kill_reason is not None:
                        self._finish(job, "FAILED", job._kill_reason)
                        return
                    attempt = await self._run_attempt(job, number)
                finally:
                    self._release_slot()
                if attempt.exit_code == 0 and attempt.kill is None:
                    self._finish(job, "SUCCEEDED", attempt.status_reason)
                    return
                if job._kill_reason is not None or not self._retry(job, attempt, number):
                    self._finish(job, "FAILED", attempt.status_reason)
                    return
                job.status_reason = attempt.status_reason
        except asyncio.CancelledError:
            if self._closing or job.status in FINAL:
                raise
            self._finish(job, "FAILED", job._kill_reason or "Cancelled")

    def _retry(self, job: Job, attempt: Attempt, number: int) -> bool:
        if number >= job.retry_attempts or attempt.status_reason == TIMEOUT_REASON:
            return False  # a job stopped by its timeout is not retried, as on Batch
        for cond in job.evaluate_on_exit:
            exit_code = "" if attempt.exit_code is None else str(attempt.exit_code)
            if (
                _matches(cond.get("onStatusReason"), attempt.status_reason)
                and _matches(cond.get("onReason"), attempt.reason)
                and _matches(cond.get("onExitCode"), exit_code)
            ):
                return str(cond.get("action", "")).upper() == "RETRY"
        return True

    def _overrides_length(self, job: Job, number: int) -> int:
        """The characters of the overrides Batch would send ECS: the command and the whole
        environment (the job's and Batch's own AWS_BATCH_* variables), as compact JSON."""
        env = dict(job.environment)
        env.update((k, v) for k, v in self._job_env(job, number).items() if k.startswith("AWS_BATCH"))
        overrides = {
            "containerOverrides": [
                {
                    "name": "default",
                    "command": job.command,
                    "environment": [{"name": k, "value": v} for k, v in env.items()],
                }
            ]
        }
        return len(json.dumps(overrides, separators=(",", ":")))

    def _job_env(self, job: Job, number: int) -> dict[str, str]:
        env: dict[str, str] = {}
        if self.inherit_env:
            env.update({k: v for k, v in os.environ.items() if not k.startswith(RESERVED_ENV_PREFIX)})
        env.update(self.base_env)
        if self._environments[job.queue.ce_name].fargate:
            env["AWS_EXECUTION_ENV"] = "AWS_ECS_FARGATE"
        if not (job.container_properties.get("jobRoleArn") or self.instance_role):
            # No job role, no task credentials (and here no instance role either).
            for name in CREDENTIAL_VARS:
                env.pop(name, None)
        env.update(job.environment)
        env.update(
            AWS_BATCH_JOB_ID=job.job_id,
            AWS_BATCH_JQ_NAME=job.queue.name,
            AWS_BATCH_CE_NAME=job.queue.ce_name,
            AWS_BATCH_JOB_ATTEMPT=str(number),
        )
        if job.index is not None and job.parent is not None:
            env["AWS_BATCH_JOB_ARRAY_INDEX"] = str(job.index)
            env["AWS_BATCH_JOB_ARRAY_SIZE"] = str(job.parent.array_size)
        return env

    def _log_target(self, job: Job) -> tuple[str, str]:
        conf = job.container_properties.get("logConfiguration") or {}
        options = conf.get("options") or {} if conf.get("logDriver", "awslogs") == "awslogs" else {}
        group = options.get("awslogs-group", DEFAULT_LOG_GROUP)
        prefix = options.get("awslogs-stream-prefix", job.definition.name)
        return group, prefix

    async def _run_attempt(self, job: Job, number: int) -> Attempt:
        group, prefix = self._log_target(job)
        task_id = uuid.uuid4().hex
        cluster = f"{job.queue.ce_name}_Batch_{job.queue.ce_name[:8]}"
        instance = "i-" + secrets.token_hex(9)[:17]
        attempt = Attempt(
            task_id=task_id,
            log_stream=f"{prefix}/default/{task_id}",
            task_arn=f"arn:aws:ecs:{self.region}:{self.account}:task/{cluster}/{task_id}",
            instance_id=instance,
            container_instance_arn=(
                f"arn:aws:ecs:{self.region}:{self.account}:container-instance/{cluster}/{secrets.token_hex(16)}"
            ),
            number=number,
        )
        job.attempts.append(attempt)
        loop = asyncio.get_running_loop()
        cwd = self.workdir / task_id
        cwd.mkdir(parents=True, exist_ok=True)
        try:
            if not job.command:
                raise FileNotFoundError("no command: the job definition and the overrides have none")
            proc = await asyncio.create_subprocess_exec(
                *self.container_wrapper,
                *job.command,
                stdin=asyncio.subprocess.DEVNULL,
                stdout=asyncio.subprocess.PIPE,
                stderr=asyncio.subprocess.STDOUT,
                env=self._job_env(job, number),
                cwd=str(cwd),
                start_new_session=True,
                limit=4 * MAX_LINE,
            )
        except (OSError, ValueError) as e:
            attempt.started_at = attempt.stopped_at = _now_ms()
            attempt.status_reason = "Task failed to start"
            attempt.reason = f"CannotStartContainerError: Error response from daemon: {e}"
            return attempt
        job._proc = proc
        self._procs.add(proc)
        attempt.pid = proc.pid
        if job._kill_reason is not None:  # terminated while the process was being started
            attempt.kill = (job._kill_reason, None, True)
            self._stop_process(proc)
        attempt.started_at = job.started_at = _now_ms()
        self._set(job, "RUNNING")
        timers = []
        if job.timeout_seconds:

            def on_timeout() -> None:
                if proc.returncode is None and attempt.kill is None:
                    attempt.kill = (TIMEOUT_REASON, None, True)
                    self._stop_process(proc)

            timers.append(loop.call_later(job.timeout_seconds, on_timeout))
        for inj in self._injections:
            if inj["count"] > 0 and (inj["match"] is None or inj["match"](job)):
                inj["count"] -= 1
                kind = inj["kind"]
                timers.append(loop.call_later(inj["after"], self._inject, job, attempt, kind, None))
                break
        assert proc.stdout is not None
        reader = loop.create_task(self._read_output(job, attempt, proc.stdout, group))
        try:
            returncode = await proc.wait()
        except asyncio.CancelledError:  # the server stops
            self._signal_group(proc, signal.SIGKILL)
            reader.cancel()
            with contextlib.suppress(BaseException):
                await asyncio.wait_for(proc.wait(), 5)
            raise
        finally:
            for t in timers:
                t.cancel()
        # the container is gone: so is everything it started
        self._signal_group(proc, signal.SIGKILL)
        try:
            await asyncio.wait_for(reader, 10)
        except TimeoutError:
            pass
        await self._flush_logs()
        job._proc = None
        self._procs.discard(proc)
        attempt.stopped_at = _now_ms()
        exit_code = returncode if returncode >= 0 else 128 - returncode
        if attempt.kill is not None:
            status_reason, reason, keep_exit = attempt.kill
            attempt.status_reason, attempt.reason = status_reason, reason
            attempt.exit_code = exit_code if keep_exit else None
            if reason == OOM_REASON:
                attempt.exit_code = 137
        else:
            attempt.status_reason = ESSENTIAL_EXITED
            attempt.exit_code = exit_code
        return attempt

    async def _read_output(
        self, job: Job, attempt: Attempt, stream: asyncio.StreamReader, group: str
    ) -> None:
        buf = b""
        while True:
            chunk = await stream.read(65536)
            if not chunk:
                break
            buf += chunk
            *lines, buf = buf.split(b"\n")
            for line in lines:
                self._emit(job, attempt, group, line)
            while len(buf) >= MAX_LINE:
                self._emit(job, attempt, group, buf[:MAX_LINE])
                buf = buf[MAX_LINE:]
        if buf:
            self._emit(job, attempt, group, buf)

    def _emit(self, job: Job, attempt: Attempt, group: str, raw: bytes) -> None:
        for start in range(0, max(len(raw), 1), MAX_LINE):
            text = raw[start : start + MAX_LINE].decode("utf-8", "replace").rstrip("\r")
            if not text:
                continue  # CloudWatch Logs takes no empty messages; the awslogs driver drops them
            job.lines.append(text)
            if self._shipper is not None:
                self._shipper.event(group, attempt.log_stream, _now_ms(), text)

    async def _flush_logs(self) -> None:
        """Wait until every line printed so far is in CloudWatch Logs."""
        if self._shipper is None:
            return
        loop = asyncio.get_running_loop()
        done = loop.create_future()

        def resolve() -> None:
            loop.call_soon_threadsafe(lambda: done.done() or done.set_result(None))

        self._shipper.flush(resolve)
        await done


@pytest.fixture
def batch_endpoint(moto_s3_endpoint: str, tmp_path: Path) -> Iterator[FakeBatch]:
    """A started FakeBatch (queue "aflow-test-queue"), logging to moto's CloudWatch Logs.

    `fake.url` is the endpoint_url for `batch` clients; the logs endpoint is `fake.logs_endpoint`.
    """
    fake = FakeBatch(logs_endpoint=moto_s3_endpoint, workdir=tmp_path / "fake-batch")
    fake.start()
    try:
        yield fake
    finally:
        fake.stop()
