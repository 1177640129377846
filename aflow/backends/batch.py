"""The AWS Batch backend (`@batch`): each job group is one Batch job, an array job for a foreach.

What it sends: a job definition registered once per distinct container shape (image, resources,
role; its name carries a hash of its content, so a rerun finds and reuses it), then one SubmitJob
per group with the group's environment as overrides. What it asks: one poller for the whole
backend calls DescribeJobs with up to 100 ids a call (an array's children by `<id>:<index>`),
backing off when throttled. Output: the task's runtime saves what it printed to the datastore
(engine/remote_output.py); a few running tasks' objects are tailed at a bounded rate and the rest
of each is read when its job ends (backends/saved_output.py); only a task whose runtime never
started (a bootstrap or image failure) or was killed before its last save has its CloudWatch
stream read, to the end, within AFLOW_BATCH_LOGS_RATE GetLogEvents calls a second for the run.
Cancelling a task terminates its job; leaving the backend terminates whatever still runs.

Settings: `@batch(queue=, iam_role=, execution_role=, image=, ...)`, else the AFLOW_BATCH_*
variables, read once per run into BatchSettings (backends/batch_settings.py).
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import re
from dataclasses import dataclass, field
from typing import Any

# aioboto3 and botocore ship no type information (their generated stubs are not a dependency).
import aioboto3  # type: ignore[import-untyped]
import anyio
from botocore.config import Config  # type: ignore[import-untyped]
from botocore.exceptions import BotoCoreError, ClientError  # type: ignore[import-untyped]

from aflow.backends.batch_platform import QueuePlatform, ec2_vcpus, fargate_resources, platform_of
from aflow.backends.batch_settings import DEFAULT_LOG_GROUP, BatchSettings
from aflow.backends.batch_settings import check_step as check_step  # the router asks it
from aflow.backends.errors import BackendUnavailable
from aflow.backends.pacing import Pacer
from aflow.backends.remote import (
    JobGroup,
    RemoteBackend,
    RemoteContext,
    RemoteTask,
    bootstrap_command,
    chunks,
)
from aflow.backends.saved_output import LiveTail
from aflow.engine.remote_output import output_key
from aflow.engine.wire import TaskExit
from aflow.exception import AflowException

DESCRIBE_LIMIT = 100  # DescribeJobs takes at most 100 ids
FINAL = ("SUCCEEDED", "FAILED")
MOVING = ("STARTING", "RUNNING")  # a child seen here is the one that can end next
STATUSES = ("SUBMITTED", "PENDING", "RUNNABLE", "STARTING", "RUNNING", *FINAL)
THROTTLED = ("TooManyRequestsException", "ThrottlingException", "Throttling", "429")
DENIED = ("AccessDeniedException", "AccessDenied", "UnauthorizedOperation")
LOST_AFTER_ROUNDS = 30  # polls in a row that reached no Batch endpoint before the run gives up
LATE_TRIES = 5  # seconds a finished container's stream may take to show up
LOG_PAGES = 100  # GetLogEvents pages read for one task's fallback output (1 MB each at most)


def _name(text: str, limit: int = 128) -> str:
    """A Batch job or definition name: letters, digits, - and _ only."""
    return re.sub(r"[^A-Za-z0-9_-]", "-", text)[:limit]


@dataclass
class _TaskState:
    """What the poller knows of one task's job."""

    stream: str | None = None  # this attempt's CloudWatch stream: the fallback for its output
    missing: int = 0  # polls in a row Batch did not know the job
    final: TaskExit | None = None  # how it ended, once Batch said so


@dataclass
class _ArrayState:
    """What the poller knows of one array job's parent."""

    parent_status: str | None = None
    dirty: bool = True  # its children changed since they were last described
    summary: dict[str, int] | None = None  # its children by status, as last described
    parent_summary: dict[str, int] = field(default_factory=dict)  # as its parent last said
    cursor: int = 0  # where the next sweep over the children not seen moving begins


class BatchBackend(RemoteBackend):
    name = "batch"
    platform = "AWS Batch"
    max_group = 10_000  # the largest array job Batch takes
    stuck_state = ("RUNNABLE",)
    image_setting = "AFLOW_BATCH_IMAGE"

    def __init__(self, ctx: RemoteContext, settings: BatchSettings | None = None) -> None:
        super().__init__(ctx)
        self.settings = settings or BatchSettings.from_env()
        self.describe_calls = 0  # for benchmarks: DescribeJobs calls made
        self.polls = 0
        self._definitions: dict[str, str] = {}  # content hash -> job definition ARN
        self._definition_lock = anyio.Lock()
        self._batch: Any = None
        self._logs: Any = None
        self._clients = contextlib.AsyncExitStack()
        self._collecting: set[RemoteTask] = set()
        self._collect_wanted = anyio.Event()
        self._logs_denied = False
        self._logs_rate = Pacer(self.settings.logs_rate)
        self._tasks: dict[RemoteTask, _TaskState] = {}
        self._arrays: dict[JobGroup, _ArrayState] = {}
        self._warned_role = False
        self._warned_platform = False
        self._noted_fargate: set[str] = set()
        self._platforms: dict[str, QueuePlatform] = {}  # job queue -> its compute, asked once
        self._platform_lock = anyio.Lock()
        self.tail = LiveTail(ctx.store, self.settings.tail_tasks, self.settings.tail_rate)

    # -- clients -------------------------------------------------------------------------------

    async def _open(self) -> None:
        config = Config(retries={"mode": "standard", "max_attempts": 8}, max_pool_connections=32)
        session = aioboto3.Session()
        self._batch = await self._clients.enter_async_context(
            session.client("batch", endpoint_url=self.settings.endpoint_url, config=config)
        )
        self._logs = await self._clients.enter_async_context(
            session.client("logs", endpoint_url=self.settings.logs_endpoint_url, config=config)
        )

    async def _close(self) -> None:
        await self._clients.aclose()

    # -- submitting ----------------------------------------------------------------------------

    async def container_settings(self, group: JobGroup) -> dict[str, str]:
        settings = await super().container_settings(group)
        settings["AFLOW_SAVE_OUTPUT"] = "1"  # the runtime saves its output (engine/remote_output.py)
        return settings

    async def _definition(self, group: JobGroup) -> str:
        """The ARN of a job definition for the group's container shape, registered on first need."""
        settings = group.decorators.get("batch", {})
        platform = await self._platform(self.settings.queue_for(group.decorators))
        properties: dict[str, Any] = {
            "image": self.image(group),
            "command": bootstrap_command(),
            "resourceRequirements": await self._requirements(group, platform),
        }
        if platform.fargate:
            properties.update(self._fargate_properties(group, platform))
        role = self.settings.role_for(group.decorators)
        if role:
            properties["jobRoleArn"] = role
        if self.settings.log_group != DEFAULT_LOG_GROUP:  # Batch's default needs no configuration
            properties["logConfiguration"] = {
                "logDriver": "awslogs",
                "options": {"awslogs-group": self.settings.log_group},
            }
        if settings.get("shared_memory"):
            properties["linuxParameters"] = {"sharedMemorySize": int(settings["shared_memory"])}
        shape = {"platform": platform.kind, **properties}
        digest = hashlib.sha256(json.dumps(shape, sort_keys=True).encode()).hexdigest()[:16]
        name = _name(f"aflow-{self.ctx.flow_name}-{digest}")
        async with self._definition_lock:
            if digest not in self._definitions:  # looked up first: a rerun reuses it
                found = await self._batch.describe_job_definitions(
                    jobDefinitionName=name, status="ACTIVE"
                )
                if found.get("jobDefinitions"):
                    newest = max(found["jobDefinitions"], key=lambda d: int(d["revision"]))
                    arn = str(newest["jobDefinitionArn"])
                else:
                    made = await self._batch.register_job_definition(
                        jobDefinitionName=name,
                        type="container",
                        containerProperties=properties,
                        platformCapabilities=[platform.kind],
                    )
                    arn = str(made["jobDefinitionArn"])
                self._definitions[digest] = arn
            return self._definitions[digest]

    async def _requirements(self, group: JobGroup, platform: QueuePlatform) -> list[dict[str, str]]:
        res = self.resources(group)
        cpu, memory = res["cpu"] or 1, res["memory"] or 4096
        if not platform.fargate:
            vcpus = ec2_vcpus(cpu)  # EC2 queues take whole vCPUs only
            requirements = [
                {"type": "VCPU", "value": vcpus},
                {"type": "MEMORY", "value": str(int(memory))},
            ]
            if res["gpu"]:
                requirements.append({"type": "GPU", "value": str(int(res["gpu"]))})
            return requirements
        if res["gpu"]:
            raise AflowException(
                f"step '{group.step}' asks for GPUs, but job queue '{platform.queue}' runs on "
                f"Fargate ({platform.described}), which has none: use a queue whose compute "
                "environment has EC2 GPU instances"
            )
        vcpus, mib = fargate_resources(cpu, memory, group.step)
        if (float(vcpus), mib) != (cpu, memory) and group.step not in self._noted_fargate:
            self._noted_fargate.add(group.step)
            await group.tasks[0].logs.line(
                "stderr",
                f"[aflow] Fargate takes fixed vCPU/memory pairs: {cpu:g} vCPU and {memory:g} MiB "
                f"asked, {vcpus} vCPU and {mib} MiB given (queue '{platform.queue}')",
            )
        return [{"type": "VCPU", "value": vcpus}, {"type": "MEMORY", "value": str(mib)}]

    def _fargate_properties(self, group: JobGroup, platform: QueuePlatform) -> dict[str, Any]:
        """What a Fargate job definition needs besides an EC2 one; refused clearly where the step
        asks for what Fargate has not."""
        settings = group.decorators.get("batch", {})
        if settings.get("shared_memory"):
            raise AflowException(
                f"step '{group.step}': @batch(shared_memory=...) is not available on Fargate (job queue "
                f"'{platform.queue}', {platform.described}): drop it or use a queue with EC2 compute"
            )
        role = self.settings.execution_role_for(group.decorators)
        if not role:
            raise AflowException(
                f"job queue '{platform.queue}' runs on Fargate ({platform.described}), which needs an "
                "execution role (the IAM role ECS uses to pull the image and send the logs): pass "
                "@batch(execution_role=ARN) or set AFLOW_BATCH_EXECUTION_ROLE"
            )
        public = self.settings.fargate_public_ip
        return {
            "executionRoleArn": role,
            # DISABLED (Batch's default): the subnet needs a NAT gateway or VPC endpoints to pull
            # the image and reach S3; ENABLED for a public subnet without one.
            "networkConfiguration": {"assignPublicIp": "ENABLED" if public else "DISABLED"},
            "fargatePlatformConfiguration": {"platformVersion": "LATEST"},
        }

    async def _platform(self, queue: str) -> QueuePlatform:
        """EC2 or Fargate: what the queue's compute environments are, asked once per run."""
        async with self._platform_lock:
            if queue not in self._platforms:
                self._platforms[queue] = await self._ask_platform(queue)
            return self._platforms[queue]

    async def _ask_platform(self, queue: str) -> QueuePlatform:
        try:
            queues = (await self._batch.describe_job_queues(jobQueues=[queue])).get("jobQueues", [])
            arns = [
                o["computeEnvironment"] for q in queues for o in q.get("computeEnvironmentOrder", [])
            ]
            environments = []
            if arns:
                answer = await self._batch.describe_compute_environments(computeEnvironments=arns)
                environments = answer.get("computeEnvironments", [])
        except ClientError as e:
            if e.response.get("Error", {}).get("Code") not in DENIED:
                raise
            # Not allowed to look: assume EC2 (Batch then refuses an EC2 definition on a Fargate
            # queue at submission, and that error is shown).
            return QueuePlatform(queue, "EC2", (), f"not allowed to describe it: {e}")
        return platform_of(queue, queues, environments)

    async def _submit(self, group: JobGroup) -> None:
        if not self.settings.role_for(group.decorators) and not self._warned_role:
            self._warned_role = True
            await group.tasks[0].logs.line(
                "stderr",
                "[aflow] warning: @batch has no job role (@batch(iam_role=...) or "
                "AFLOW_BATCH_IAM_ROLE): the container gets no AWS credentials of its own for the "
                f"datastore ({self.ctx.store.url}) unless its compute environment's instance role "
                "grants them",
            )
        definition = await self._definition(group)
        queue = self.settings.queue_for(group.decorators)
        platform = await self._platform(queue)
        if platform.unknown and not self._warned_platform:
            self._warned_platform = True
            await group.tasks[0].logs.line(
                "stderr",
                f"[aflow] warning: job queue '{platform.queue}' assumed to run on EC2 "
                f"({platform.unknown}); allow batch:DescribeJobQueues and "
                "batch:DescribeComputeEnvironments so aflow can tell EC2 from Fargate",
            )
        env = await self.container_env(group)
        request: dict[str, Any] = {
            "jobName": _name(f"aflow-{self.ctx.flow_name}-{group.step}-{self.ctx.run_id}"),
            "jobQueue": queue,
            "jobDefinition": definition,
            "containerOverrides": {
                "environment": [{"name": k, "value": v} for k, v in sorted(env.items())]
            },
            "tags": {"aflow:flow": self.ctx.flow_name, "aflow:run": self.ctx.run_id},
        }
        if group.is_array:
            request["arrayProperties"] = {"size": len(group.tasks)}
        job_id = str((await self._batch.submit_job(**request))["jobId"])
        group.job_id = job_id
        for i, t in enumerate(group.tasks):
            t.job_id = f"{job_id}:{i}" if group.is_array else job_id

    # -- watching ------------------------------------------------------------------------------

    async def _watch(self) -> None:
        async with anyio.create_task_group() as tg:
            tg.start_soon(self._collect_outputs)
            tg.start_soon(self.tail.run)
            interval, failed_rounds = self.settings.poll_seconds, 0
            while True:
                await anyio.sleep(interval)
                outcome = await self._poll()
                if outcome == "throttled":
                    interval = min(60.0, interval * 2)  # asked to slow down: do
                    continue
                interval = max(self.settings.poll_seconds, interval * 0.8)
                failed_rounds = failed_rounds + 1 if outcome else 0
                if failed_rounds >= LOST_AFTER_ROUNDS:
                    raise BackendUnavailable(f"lost contact with AWS Batch: {outcome}")

    async def _poll(self) -> str | None:
        """One round of DescribeJobs; "throttled", or why a call failed (a network error: the
        next round tries again), or None.

        An array whose parent's status summary has not moved since its children were last
        described costs one id (its parent's); one that changed has some of its children described
        in the next round (`_worth_describing`), not all of them: a 10,000-way array draining a few
        children at a time would otherwise cost 100 calls a round for the whole drain."""
        ids: dict[str, RemoteTask | JobGroup] = {}
        described: list[JobGroup] = []
        for group in list(self.active.values()):
            waiting = [t for t in group.tasks if t.exit is None and self._state(t).final is None]
            if group.is_array and group.job_id:
                ids[group.job_id] = group  # its status says whether its children exist yet
            if not group.is_array:
                ids.update((t.job_id, t) for t in waiting if t.job_id)
            elif self._array(group).dirty:
                ids.update((t.job_id, t) for t in self._worth_describing(group, waiting) if t.job_id)
                described.append(group)
        if not ids:
            return None
        self.polls += 1
        limiter = anyio.CapacityLimiter(8)
        outcome: list[str] = []

        async def describe(chunk: list[str]) -> None:
            async with limiter:
                self.describe_calls += 1
                try:
                    answer = await self._batch.describe_jobs(jobs=chunk)
                except ClientError as e:
                    code = e.response.get("Error", {}).get("Code")
                    if code not in THROTTLED:
                        raise BackendUnavailable(f"AWS Batch refused DescribeJobs: {e}") from None
                    outcome.append("throttled")
                    return
                except (BotoCoreError, OSError) as e:
                    outcome.append(f"{type(e).__name__}: {e}")
                    return
            answered = {job["jobId"] for job in answer.get("jobs", [])}
            for job in answer.get("jobs", []):
                parent = ids.get(job["jobId"])
                if isinstance(parent, JobGroup):
                    self._array(parent).parent_status = job["status"]
            for job_id in chunk:
                asked = ids[job_id]
                if job_id in answered or not isinstance(asked, RemoteTask):
                    continue
                if self._not_spawned_yet(asked):
                    continue
                # Batch forgets jobs some days after they end: a job never seen again is lost.
                state = self._state(asked)
                state.missing += 1
                if state.missing >= LOST_AFTER_ROUNDS:
                    state.final = TaskExit(1, f"AWS Batch no longer knows job {job_id}")
                    self._finish(asked)
            for job in answer.get("jobs", []):
                target = ids.get(job["jobId"])
                if isinstance(target, JobGroup):
                    array = self._array(target)
                    summary = (job.get("arrayProperties") or {}).get("statusSummary") or {}
                    seen = {k: v for k, v in summary.items() if v}
                    array.parent_summary = seen
                    # No children yet (the parent spawns them asynchronously): nothing to ask.
                    spawning = not seen and job["status"] in ("SUBMITTED", "PENDING")
                    array.dirty = not spawning and seen != array.summary
                elif target is not None:
                    await self._update(target, job)

        async with anyio.create_task_group() as tg:
            for chunk in chunks(list(ids), DESCRIBE_LIMIT):
                tg.start_soon(describe, chunk)
        if outcome:
            return "throttled" if "throttled" in outcome else outcome[0]
        for group in described:
            array = self._array(group)
            array.dirty, array.summary = False, _summary(group)
        return None

    def _worth_describing(self, group: JobGroup, waiting: list[RemoteTask]) -> list[RemoteTask]:
        """The unfinished children of a changed array worth describing this round.

        Only a child that has started can end, and its parent's summary says how many children
        started or ended that we have not seen move. So: every child last seen starting or
        running, and, of the others, a window of at least a call's worth (twice the unseen moves
        when more): half from the lowest indexes (Batch starts an array's children roughly in
        order), half from a cursor that sweeps all of them in turn, so a child that started and
        ended between two rounds, wherever it is, is found within ceil(waiting / 50) rounds.
        Rounds cost ceil((moving + window) / 100) calls, whatever the array's width."""
        array = self._array(group)
        if array.summary is None:
            return waiting  # the first look: every child once
        moving = [t for t in waiting if t.state in MOVING]
        still = [t for t in waiting if t.state not in MOVING]
        started_or_ended = (*MOVING, *FINAL)
        said = sum(array.parent_summary.get(s, 0) for s in started_or_ended)
        known = sum(array.summary.get(s, 0) for s in started_or_ended)
        window = max(DESCRIBE_LIMIT, 2 * (said - known))
        if len(still) <= window:
            return waiting
        half = window // 2
        start = array.cursor % len(still)
        swept = (still + still)[start : start + window - half]
        array.cursor = start + len(swept)
        chosen = {id(t) for t in still[:half]} | {id(t) for t in swept}
        return moving + [t for t in still if id(t) in chosen]

    def _state(self, task: RemoteTask) -> _TaskState:
        state = self._tasks.get(task)
        if state is None:
            state = self._tasks[task] = _TaskState()
        return state

    def _array(self, group: JobGroup) -> _ArrayState:
        state = self._arrays.get(group)
        if state is None:
            state = self._arrays[group] = _ArrayState()
        return state

    def _not_spawned_yet(self, task: RemoteTask) -> bool:
        """An array child Batch does not know yet while its parent is still spawning children
        (the parent is not final): not lost, only not there yet."""
        if not task.job_id or ":" not in task.job_id:
            return False
        group = self.active.get(task.job_id.split(":")[0])
        if group is None or group not in self._arrays:
            return False
        return self._arrays[group].parent_status not in (None, *FINAL)

    async def _update(self, task: RemoteTask, job: dict[str, Any]) -> None:
        status = job["status"]
        self.set_state(task, status)
        container = job.get("container") or {}
        state = self._state(task)
        if container.get("logStreamName"):  # this attempt's stream: the fallback for its output
            state.stream = str(container["logStreamName"])
        if status == "RUNNING":
            self.tail.started(task, _output_key(task), task.logs)
        if status in FINAL and state.final is None:
            state.final = _exit_of(job)
            self._collecting.add(task)
            self._collect_wanted.set()

    def _finish(self, task: RemoteTask) -> None:
        self._collecting.discard(task)
        final = self._tasks.pop(task, _TaskState()).final
        task.finish(final or TaskExit(1, "AWS Batch said nothing of how the job ended"))
        group = self.active.get(task.job_id.split(":")[0]) if task.job_id else None
        if group is not None:
            self.retire(group)
            if group.job_id not in self.active:
                self._arrays.pop(group, None)

    async def _collect_outputs(self) -> None:
        """A finished task's output, then its end: the rest of what its runtime saved to the
        datastore (one ranged GET; the live tail may have read the start), else (the runtime never
        started, or was killed before its last save) what the container printed to CloudWatch
        Logs. CloudWatch is never read while tasks run: a 10,000-way array costs no per-task
        polling of the account's shared GetLogEvents quota."""
        limiter = anyio.CapacityLimiter(16)

        async def collect(task: RemoteTask) -> None:
            async with limiter:
                try:
                    saved = await self.tail.finish(task, _output_key(task), task.logs)
                    if not saved.ended:
                        await self._cloudwatch_output(task, skip=saved.lines)
                finally:
                    self._finish(task)

        while True:
            await self._collect_wanted.wait()
            self._collect_wanted = anyio.Event()
            batch, self._collecting = self._collecting, set()
            async with anyio.create_task_group() as tg:
                for task in batch:
                    tg.start_soon(collect, task)

    async def _cloudwatch_output(self, task: RemoteTask, skip: int = 0) -> None:
        """The stream read to its end (the end is a nextForwardToken equal to the one sent; a page
        may be empty before it), at most LOG_PAGES pages, within the backend's GetLogEvents rate.
        The first `skip` lines were delivered from the saved output already (the container's
        stream holds the same lines: the runtime passes everything on)."""
        stream = self._state(task).stream
        if not stream or self._logs_denied:
            return
        token: str | None = None
        seen, late = 0, 0
        for _ in range(LOG_PAGES):
            args: dict[str, Any] = {
                "logGroupName": self.settings.log_group,
                "logStreamName": stream,
                "startFromHead": True,
            }
            if token:
                args["nextToken"] = token
            await self._logs_rate.wait()
            try:
                answer = await self._logs.get_log_events(**args)
            except ClientError as e:
                code = e.response.get("Error", {}).get("Code")
                if code in THROTTLED:
                    await anyio.sleep(1.0)
                    continue
                if code in ("AccessDeniedException", "UnrecognizedClientException"):
                    self._logs_denied = True
                    await task.logs.line("stderr", f"[aflow] cannot read its CloudWatch logs: {e}")
                    return
                if code == "ResourceNotFoundException" and late < LATE_TRIES:
                    late += 1  # CloudWatch shows a stream's lines a moment after they were written
                    await anyio.sleep(1.0)
                    continue
                return
            except (BotoCoreError, OSError):
                return
            events = answer.get("events", [])
            seen += len(events)
            for event in events:
                for line in event["message"].splitlines() or [""]:
                    if skip:
                        skip -= 1
                        continue
                    await task.logs.line("stdout", line)
            following = answer.get("nextForwardToken")
            if not following or following == token:
                if seen or late >= LATE_TRIES:
                    return
                late += 1  # nothing yet: the lines may still be on their way
                await anyio.sleep(1.0)
                continue
            token = following

    # -- stopping ------------------------------------------------------------------------------

    async def _terminate(self, tasks: list[RemoteTask]) -> None:
        """Terminate the tasks' jobs: an array's parent when all its unfinished children go."""
        stopping = {id(t) for t in tasks}
        targets: list[str] = []
        for group in list(self.active.values()):
            mine = [t for t in group.tasks if id(t) in stopping and t.exit is None]
            if not mine:
                continue
            others = [t for t in group.tasks if id(t) not in stopping and t.exit is None]
            if group.is_array and others:
                targets += [t.job_id for t in mine if t.job_id]
            elif group.job_id:
                targets.append(group.job_id)

        async def terminate(job_id: str) -> None:
            with contextlib.suppress(ClientError):
                await self._batch.terminate_job(jobId=job_id, reason="cancelled by aflow")

        async with anyio.create_task_group() as tg:
            for job_id in targets:
                tg.start_soon(terminate, job_id)


def _output_key(task: RemoteTask) -> str:
    spec = task.spec
    return output_key(spec.flow_name, spec.run_id, spec.step, spec.task_id, spec.attempt)


def _summary(group: JobGroup) -> dict[str, int]:
    """An array's children by status, as we last saw them: what its parent's statusSummary says
    when nothing has changed since."""
    counts: dict[str, int] = {}
    for t in group.tasks:
        status = t.state if t.state in STATUSES else "SUBMITTED"
        counts[status] = counts.get(status, 0) + 1
    return counts


def _exit_of(job: dict[str, Any]) -> TaskExit:
    if job["status"] == "SUCCEEDED":
        return TaskExit(0)
    container = job.get("container") or {}
    code = container.get("exitCode")
    words = [w for w in (job.get("statusReason"), container.get("reason")) if w]
    reason = f"AWS Batch job {job['jobId']} FAILED: {'; '.join(words) or 'no reason given'}"
    if code is not None:
        reason += f" (exit code {code})"
    return TaskExit(code if code else 1, reason)
