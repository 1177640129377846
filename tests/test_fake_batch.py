"""The AWS Batch emulator (tests/fakes/batch_server.py), driven with aioboto3 as a backend would."""

from __future__ import annotations

import asyncio
import contextlib
import re
import sys
import time
from typing import Any

import aioboto3
import pytest
from botocore.config import Config
from botocore.exceptions import ClientError

pytest.register_assert_rewrite("fakes.batch_server")  # imported before pytest loads it as a plugin
from fakes.batch_server import STATUSES, FakeBatch  # noqa: E402

QUEUE = "aflow-test-queue"
ARN_PREFIX = "arn:aws:batch:us-east-1:123456789012"
RESOURCES = [{"type": "VCPU", "value": "1"}, {"type": "MEMORY", "value": "512"}]


def _session() -> aioboto3.Session:
    return aioboto3.Session(
        aws_access_key_id="testing", aws_secret_access_key="testing", region_name="us-east-1"
    )


def run(fake: FakeBatch, logs_url: str, body: Any, retries: int | None = None) -> Any:
    """asyncio.run(body(batch, logs)) with aioboto3 clients on the emulator and moto's Logs."""

    async def main() -> Any:
        config = Config(retries={"total_max_attempts": retries, "mode": "standard"}) if retries else None
        session = _session()
        async with (
            session.client("batch", endpoint_url=fake.url, config=config) as batch,
            session.client("logs", endpoint_url=logs_url) as logs,
        ):
            return await body(batch, logs)

    return asyncio.run(main())


async def register(batch: Any, name: str = "aflow-step", **props: Any) -> str:
    r = await batch.register_job_definition(
        jobDefinitionName=name,
        type="container",
        containerProperties={
            "image": "python:3.11-slim",
            "command": ["python", "-c", "print('from the job definition')"],
            "resourceRequirements": RESOURCES,
            **props,
        },
    )
    return r["jobDefinitionArn"]


async def wait_final(batch: Any, job_id: str, timeout: float = 20) -> tuple[dict, list[str]]:
    """Poll describe_jobs fast; the job's last description and the statuses seen, in order."""
    seen: list[str] = []
    deadline = time.monotonic() + timeout
    while True:
        job = (await batch.describe_jobs(jobs=[job_id]))["jobs"][0]
        if not seen or seen[-1] != job["status"]:
            seen.append(job["status"])
        if job["status"] in ("SUCCEEDED", "FAILED"):
            return job, seen
        assert time.monotonic() < deadline, f"job {job_id} still {job['status']}"
        await asyncio.sleep(0.004)


async def wait_status(batch: Any, job_id: str, status: str, timeout: float = 10) -> dict:
    deadline = time.monotonic() + timeout
    while True:
        job = (await batch.describe_jobs(jobs=[job_id]))["jobs"][0]
        if job["status"] == status:
            return job
        assert time.monotonic() < deadline, f"job {job_id} is {job['status']}, never {status}"
        await asyncio.sleep(0.01)


async def log_messages(logs: Any, stream: str) -> list[str]:
    r = await logs.get_log_events(
        logGroupName="/aws/batch/job", logStreamName=stream, startFromHead=True
    )
    return [e["message"] for e in r["events"]]


def alive(pid: int) -> bool:
    """Running (a zombie waiting for a parent that does not reap, as PID 1 here may not, is dead)."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except FileNotFoundError:
        return False


def in_order(seen: list[str]) -> bool:
    return [STATUSES.index(s) for s in seen] == sorted(STATUSES.index(s) for s in seen)


def test_plain_job_runs_locally_through_every_state_with_logs(
    batch_endpoint: FakeBatch, moto_s3_endpoint: str
) -> None:
    code = (
        "import os, sys, time\n"
        "print('hi', flush=True)\n"
        "print('to stderr', file=sys.stderr)\n"
        "for k in ('AWS_BATCH_JOB_ID', 'AWS_BATCH_JQ_NAME', 'AWS_BATCH_CE_NAME',"
        " 'AWS_BATCH_JOB_ATTEMPT', 'FROM_DEF', 'FROM_OVERRIDE'):\n"
        "    print(k, os.environ.get(k))\n"
        "print('array index', os.environ.get('AWS_BATCH_JOB_ARRAY_INDEX'))\n"
        "time.sleep(0.2)\n"
    )

    async def body(batch: Any, logs: Any) -> str:
        arn = await register(batch, environment=[{"name": "FROM_DEF", "value": "d"}])
        # a backend reuses a definition keyed by content: it looks it up first
        defs = await batch.describe_job_definitions(jobDefinitionName="aflow-step", status="ACTIVE")
        assert [d["jobDefinitionArn"] for d in defs["jobDefinitions"]] == [arn]
        assert defs["jobDefinitions"][0]["containerProperties"]["resourceRequirements"] == RESOURCES

        r = await batch.submit_job(
            jobName="run-1_start_0",
            jobQueue=QUEUE,
            jobDefinition=arn,
            containerOverrides={
                "command": ["python", "-c", code],
                "environment": [{"name": "FROM_OVERRIDE", "value": "o"}],
                "resourceRequirements": [{"type": "MEMORY", "value": "2048"}],
            },
        )
        job, seen = await wait_final(batch, r["jobId"])
        assert job["status"] == "SUCCEEDED", job
        assert in_order(seen) and seen[0] in ("SUBMITTED", "PENDING") and "RUNNING" in seen
        assert batch_endpoint.job(r["jobId"]).states == list(STATUSES[:6])  # every state, in order
        assert job["jobId"] == r["jobId"] and job["jobName"] == "run-1_start_0"
        assert job["jobQueue"].endswith(f"job-queue/{QUEUE}") and job["jobDefinition"] == arn
        assert isinstance(job["createdAt"], int) and job["startedAt"] <= job["stoppedAt"]
        assert job["container"]["exitCode"] == 0
        assert job["statusReason"] == "Essential container in task exited"
        assert {"type": "MEMORY", "value": "2048"} in job["container"]["resourceRequirements"]
        assert {"type": "VCPU", "value": "1"} in job["container"]["resourceRequirements"]
        stream = job["container"]["logStreamName"]
        assert re.fullmatch(r"aflow-step/default/[0-9a-f]{32}", stream)
        assert len(job["attempts"]) == 1 and job["attempts"][0]["container"]["logStreamName"] == stream

        lines = await log_messages(logs, stream)
        assert lines[:2] == ["hi", "to stderr"]
        assert f"AWS_BATCH_JOB_ID {r['jobId']}" in lines
        assert f"AWS_BATCH_JQ_NAME {QUEUE}" in lines
        assert "AWS_BATCH_CE_NAME aflow-test-ce" in lines
        assert "AWS_BATCH_JOB_ATTEMPT 1" in lines
        assert "FROM_DEF d" in lines and "FROM_OVERRIDE o" in lines
        assert "array index None" in lines
        assert lines == batch_endpoint.log_lines(r["jobId"])
        return r["jobId"]

    job_id = run(batch_endpoint, moto_s3_endpoint, body)
    # every request is recorded with its parsed body
    ops = [r.operation for r in batch_endpoint.requests]
    assert ops[:3] == ["RegisterJobDefinition", "DescribeJobDefinitions", "SubmitJob"]
    submitted = batch_endpoint.calls("SubmitJob")[0]
    assert submitted["containerOverrides"]["resourceRequirements"] == [
        {"type": "MEMORY", "value": "2048"}
    ]
    assert batch_endpoint.job(job_id).resource("MEMORY") == "2048"
    assert all(len(b["jobs"]) == 1 for b in batch_endpoint.calls("DescribeJobs"))
    assert batch_endpoint.log_errors == [] and batch_endpoint.server_errors == []


def test_array_job_children_get_their_index(batch_endpoint: FakeBatch, moto_s3_endpoint: str) -> None:
    batch_endpoint.parallelism = 2

    async def body(batch: Any, logs: Any) -> None:
        arn = await register(batch)
        r = await batch.submit_job(
            jobName="foreach",
            jobQueue=QUEUE,
            jobDefinition=arn,
            arrayProperties={"size": 5},
            containerOverrides={
                "command": [
                    "sh",
                    "-c",
                    'echo "child $AWS_BATCH_JOB_ARRAY_INDEX of $AWS_BATCH_JOB_ARRAY_SIZE"'
                    ' "id $AWS_BATCH_JOB_ID"',
                ]
            },
        )
        parent_id = r["jobId"]
        parent, seen = await wait_final(batch, parent_id)
        assert parent["status"] == "SUCCEEDED"
        assert in_order(seen) and set(seen) <= {"SUBMITTED", "PENDING", "SUCCEEDED"}  # never RUNNING
        assert parent["arrayProperties"]["size"] == 5
        assert parent["arrayProperties"]["statusSummary"]["SUCCEEDED"] == 5

        ids = [f"{parent_id}:{i}" for i in range(5)]
        children = (await batch.describe_jobs(jobs=ids))["jobs"]
        assert [c["jobId"] for c in children] == ids
        for i, child in enumerate(children):
            assert child["status"] == "SUCCEEDED" and child["arrayProperties"] == {"index": i}
            lines = await log_messages(logs, child["container"]["logStreamName"])
            assert lines == [f"child {i} of 5 id {parent_id}:{i}"]

        listed = await batch.list_jobs(arrayJobId=parent_id, jobStatus="SUCCEEDED")
        assert sorted(s["jobId"] for s in listed["jobSummaryList"]) == ids

    run(batch_endpoint, moto_s3_endpoint, body)
    assert batch_endpoint.calls("SubmitJob")[0]["arrayProperties"] == {"size": 5}
    assert batch_endpoint.peak_running <= 2


def test_failing_job_reports_its_exit_code(batch_endpoint: FakeBatch, moto_s3_endpoint: str) -> None:
    async def body(batch: Any, logs: Any) -> None:
        arn = await register(batch)
        cmd = ["python", "-c", "import sys; print('boom', file=sys.stderr); sys.exit(3)"]
        r = await batch.submit_job(
            jobName="fails", jobQueue=QUEUE, jobDefinition=arn, containerOverrides={"command": cmd}
        )
        job, seen = await wait_final(batch, r["jobId"])
        assert job["status"] == "FAILED" and in_order(seen)
        assert job["container"]["exitCode"] == 3
        assert job["statusReason"] == "Essential container in task exited"
        assert job["attempts"][0]["container"]["exitCode"] == 3
        assert await log_messages(logs, job["container"]["logStreamName"]) == ["boom"]

        # a command that cannot start fails the job too
        r = await batch.submit_job(
            jobName="no-such-exe",
            jobQueue=QUEUE,
            jobDefinition=arn,
            containerOverrides={"command": ["no-such-executable-here"]},
        )
        job, _ = await wait_final(batch, r["jobId"])
        assert job["status"] == "FAILED" and job["statusReason"] == "Task failed to start"
        assert job["container"]["reason"].startswith("CannotStartContainerError")

    run(batch_endpoint, moto_s3_endpoint, body)


def test_terminate_kills_a_running_job_and_logs_come_live(
    batch_endpoint: FakeBatch, moto_s3_endpoint: str
) -> None:
    batch_endpoint.kill_grace = 0.3

    async def body(batch: Any, logs: Any) -> str:
        arn = await register(batch)
        code = (
            "import subprocess, sys, time\n"
            "child = subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(60)'])\n"
            "print('child', child.pid, flush=True)\n"
            "time.sleep(60)\n"
        )
        r = await batch.submit_job(
            jobName="sleeper",
            jobQueue=QUEUE,
            jobDefinition=arn,
            containerOverrides={"command": ["python", "-c", code]},
        )
        job = await wait_status(batch, r["jobId"], "RUNNING")
        stream = job["container"]["logStreamName"]
        # the line printed is in CloudWatch Logs while the job still runs (the stream exists
        # from the first line on: a reader must expect ResourceNotFoundException before that)
        deadline = time.monotonic() + 10
        lines: list[str] = []
        while not lines:
            assert time.monotonic() < deadline
            await asyncio.sleep(0.02)
            with contextlib.suppress(logs.exceptions.ResourceNotFoundException):
                lines = await log_messages(logs, stream)
        grandchild = int(lines[0].split()[1])
        pid = batch_endpoint.job(r["jobId"]).attempt.pid
        assert batch_endpoint.live_processes() == [pid]

        await batch.terminate_job(jobId=r["jobId"], reason="Cancelled by the user (Ctrl-C)")
        job, _ = await wait_final(batch, r["jobId"])
        assert job["status"] == "FAILED"
        assert job["statusReason"] == "Cancelled by the user (Ctrl-C)"
        assert job["isTerminated"] is True
        assert job["container"]["exitCode"] == 128 + 15  # SIGTERM
        assert batch_endpoint.live_processes() == []
        await asyncio.sleep(0.1)
        assert not alive(pid) and not alive(grandchild)  # the whole process group is gone
        return r["jobId"]

    job_id = run(batch_endpoint, moto_s3_endpoint, body)
    assert batch_endpoint.calls("TerminateJob") == [
        {"jobId": job_id, "reason": "Cancelled by the user (Ctrl-C)"}
    ]


def test_a_held_job_stays_runnable_until_released(
    batch_endpoint: FakeBatch, moto_s3_endpoint: str
) -> None:
    batch_endpoint.hold_runnable()

    async def body(batch: Any, logs: Any) -> None:
        arn = await register(batch)
        r = await batch.submit_job(jobName="stuck", jobQueue=QUEUE, jobDefinition=arn)
        await wait_status(batch, r["jobId"], "RUNNABLE")
        await asyncio.sleep(0.4)
        job = (await batch.describe_jobs(jobs=[r["jobId"]]))["jobs"][0]
        assert job["status"] == "RUNNABLE" and "startedAt" not in job
        running = await batch.list_jobs(jobQueue=QUEUE, jobStatus="RUNNABLE")
        assert [s["jobId"] for s in running["jobSummaryList"]] == [r["jobId"]]

        await asyncio.to_thread(batch_endpoint.release)
        job, _ = await wait_final(batch, r["jobId"])
        assert job["status"] == "SUCCEEDED"
        assert await log_messages(logs, job["container"]["logStreamName"]) == ["from the job definition"]

        # a held job can be cancelled; it never ran
        batch_endpoint.hold_runnable()
        r = await batch.submit_job(jobName="cancelled", jobQueue=QUEUE, jobDefinition=arn)
        await wait_status(batch, r["jobId"], "RUNNABLE")
        await batch.cancel_job(jobId=r["jobId"], reason="stuck in RUNNABLE for too long")
        job, _ = await wait_final(batch, r["jobId"])
        assert job["status"] == "FAILED" and job["statusReason"] == "stuck in RUNNABLE for too long"
        assert job["attempts"] == [] and job["isCancelled"] is True

    run(batch_endpoint, moto_s3_endpoint, body)


def test_container_overrides_over_8192_characters_fail_the_job(
    batch_endpoint: FakeBatch, moto_s3_endpoint: str
) -> None:
    async def body(batch: Any, logs: Any) -> None:
        arn = await register(batch)
        ok = {"environment": [{"name": "X", "value": "x" * 7000}]}
        r = await batch.submit_job(
            jobName="fits", jobQueue=QUEUE, jobDefinition=arn, containerOverrides=ok
        )
        job, _ = await wait_final(batch, r["jobId"])
        assert job["status"] == "SUCCEEDED"
        # The command counts too, even from the job definition (Batch passes it on as an override).
        long_def = await register(batch, "long-command", command=["python", "-c", "pass#" + "y" * 5000])
        r = await batch.submit_job(
            jobName="too-long", jobQueue=QUEUE, jobDefinition=long_def, containerOverrides=ok
        )
        job, seen = await wait_final(batch, r["jobId"])
        assert job["status"] == "FAILED" and "RUNNING" not in seen
        assert job["statusReason"] == "Container Overrides length must be at most 8192"

    run(batch_endpoint, moto_s3_endpoint, body)


def test_host_eviction_and_retry_strategy(batch_endpoint: FakeBatch, moto_s3_endpoint: str) -> None:
    batch_endpoint.inject_failure("eviction", count=1, after=0.1)
    code = (
        "import os, time; print('attempt', os.environ['AWS_BATCH_JOB_ATTEMPT'], flush=True);"
        " time.sleep(0.3)"
    )

    async def body(batch: Any, logs: Any) -> None:
        arn = await register(batch, command=["python", "-c", code])
        evicted = await batch.submit_job(jobName="evicted", jobQueue=QUEUE, jobDefinition=arn)
        job, _ = await wait_final(batch, evicted["jobId"])
        assert job["status"] == "FAILED"
        assert re.fullmatch(r"Host EC2 \(instance i-[0-9a-f]{17}\) terminated\.", job["statusReason"])
        assert "exitCode" not in job["container"]

        # with a retry strategy, Batch itself runs the job again after an eviction
        batch_endpoint.inject_failure("eviction", count=1, after=0.1)
        r = await batch.submit_job(
            jobName="retried",
            jobQueue=QUEUE,
            jobDefinition=arn,
            retryStrategy={
                "attempts": 2,
                "evaluateOnExit": [
                    {"onStatusReason": "Host EC2*", "action": "RETRY"},
                    {"onReason": "*", "action": "EXIT"},
                ],
            },
        )
        job, _ = await wait_final(batch, r["jobId"])
        assert job["status"] == "SUCCEEDED" and len(job["attempts"]) == 2
        first, second = job["attempts"]
        assert first["statusReason"].startswith("Host EC2")
        assert second["container"]["exitCode"] == 0
        assert first["container"]["logStreamName"] != second["container"]["logStreamName"]
        assert await log_messages(logs, second["container"]["logStreamName"]) == ["attempt 2"]

        # out of memory: exit code 137 and the reason on the container
        batch_endpoint.inject_failure("oom", count=1, after=0.1)
        r = await batch.submit_job(jobName="oom", jobQueue=QUEUE, jobDefinition=arn)
        job, _ = await wait_final(batch, r["jobId"])
        assert job["status"] == "FAILED" and job["container"]["exitCode"] == 137
        assert job["container"]["reason"].startswith("OutOfMemoryError")

    run(batch_endpoint, moto_s3_endpoint, body)


def test_timeout_terminates_the_attempt(batch_endpoint: FakeBatch, moto_s3_endpoint: str) -> None:
    async def body(batch: Any, logs: Any) -> None:
        arn = await register(batch, command=["sleep", "30"])
        r = await batch.submit_job(
            jobName="slow",
            jobQueue=QUEUE,
            jobDefinition=arn,
            timeout={"attemptDurationSeconds": 1},
            retryStrategy={"attempts": 3},
        )
        job, _ = await wait_final(batch, r["jobId"])
        assert job["status"] == "FAILED"
        assert job["statusReason"] == "Job attempt duration exceeded timeout"
        assert len(job["attempts"]) == 1  # a timed-out job is not retried

    batch_endpoint.kill_grace = 0.2
    run(batch_endpoint, moto_s3_endpoint, body)


def test_api_errors_like_batch(batch_endpoint: FakeBatch, moto_s3_endpoint: str) -> None:
    async def body(batch: Any, logs: Any) -> None:
        arn = await register(batch)

        async def code_of(call: Any) -> str:
            with pytest.raises(ClientError) as info:
                await call
            return info.value.response["Error"]["Code"]

        bad_name = batch.submit_job(jobName="run/step/1", jobQueue=QUEUE, jobDefinition=arn)
        assert await code_of(bad_name) == "ClientException"
        no_queue = batch.submit_job(jobName="j", jobQueue="nope", jobDefinition=arn)
        assert await code_of(no_queue) == "ClientException"
        no_def = batch.submit_job(jobName="j", jobQueue=QUEUE, jobDefinition="missing")
        assert await code_of(no_def) == "ClientException"
        reserved = batch.submit_job(
            jobName="j",
            jobQueue=QUEUE,
            jobDefinition=arn,
            containerOverrides={"environment": [{"name": "AWS_BATCH_X", "value": "1"}]},
        )
        assert await code_of(reserved) == "ClientException"
        assert (
            await code_of(batch.describe_jobs(jobs=[f"id-{i}" for i in range(101)])) == "ClientException"
        )
        assert (await batch.describe_jobs(jobs=["unknown"]))["jobs"] == []

        batch_endpoint.throttle(1, "DescribeJobs")
        assert await code_of(batch.describe_jobs(jobs=["x"])) == "TooManyRequestsException"

        # queues
        created = await batch.create_job_queue(
            jobQueueName="gpu-queue",
            priority=10,
            computeEnvironmentOrder=[
                {
                    "order": 1,
                    "computeEnvironment": f"{ARN_PREFIX}:compute-environment/gpu-ce",
                }
            ],
        )
        queues = (await batch.describe_job_queues(jobQueues=["gpu-queue"]))["jobQueues"]
        assert [q["jobQueueArn"] for q in queues] == [created["jobQueueArn"]]
        r = await batch.submit_job(
            jobName="on-gpu",
            jobQueue=created["jobQueueArn"],
            jobDefinition=arn,
            containerOverrides={
                "command": ["sh", "-c", "echo $AWS_BATCH_JQ_NAME $AWS_BATCH_CE_NAME"],
                "resourceRequirements": [
                    {"type": "GPU", "value": "1"},
                    {"type": "MEMORY", "value": "32000"},
                ],
            },
        )
        job, _ = await wait_final(batch, r["jobId"])
        assert await log_messages(logs, job["container"]["logStreamName"]) == ["gpu-queue gpu-ce"]
        assert batch_endpoint.job(r["jobId"]).resource("GPU") == "1"

    run(batch_endpoint, moto_s3_endpoint, body, retries=1)
    throttled = [r for r in batch_endpoint.requests if r.status == 429]
    assert len(throttled) == 1 and throttled[0].operation == "DescribeJobs"


def test_many_children_are_described_in_calls_of_100(
    batch_endpoint: FakeBatch, moto_s3_endpoint: str
) -> None:
    batch_endpoint.parallelism = 8
    batch_endpoint.state_delay = 0.005

    async def body(batch: Any, logs: Any) -> None:
        arn = await register(batch, command=["true"])
        r = await batch.submit_job(
            jobName="wide", jobQueue=QUEUE, jobDefinition=arn, arrayProperties={"size": 250}
        )
        ids = [f"{r['jobId']}:{i}" for i in range(250)]
        while True:  # a poller as the backend will have one: ceil(250/100) = 3 calls per round
            found = []
            for start in range(0, len(ids), 100):
                found += (await batch.describe_jobs(jobs=ids[start : start + 100]))["jobs"]
            if all(j["status"] == "SUCCEEDED" for j in found):
                break
            await asyncio.sleep(0.1)
        assert len(found) == 250

    started = time.monotonic()
    run(batch_endpoint, moto_s3_endpoint, body)
    assert time.monotonic() - started < 20
    sizes = [len(b["jobs"]) for b in batch_endpoint.calls("DescribeJobs")]
    assert max(sizes) == 100 and len(sizes) % 3 == 0
    assert batch_endpoint.peak_running <= 8
    assert len(batch_endpoint.jobs) == 251


def test_stop_kills_what_is_still_running(moto_s3_endpoint: str, tmp_path: Any) -> None:
    fake = FakeBatch(logs_endpoint=None, workdir=tmp_path / "b").start()

    async def body(batch: Any, logs: Any) -> None:
        arn = await register(batch, command=[sys.executable, "-c", "import time; time.sleep(60)"])
        r = await batch.submit_job(jobName="left", jobQueue=QUEUE, jobDefinition=arn)
        await wait_status(batch, r["jobId"], "RUNNING")

    run(fake, moto_s3_endpoint, body)
    [pid] = fake.live_processes()
    fake.stop()
    time.sleep(0.1)
    assert not alive(pid)


def test_fargate_rules_like_batch(batch_endpoint: FakeBatch, moto_s3_endpoint: str) -> None:
    # A Fargate compute environment; what Batch refuses for its jobs (RegisterJobDefinition,
    # ResourceRequirement in the API reference; the vCPU/memory table from botocore's model).
    batch_endpoint.add_queue("fargate-queue", "fargate-ce", "FARGATE")

    async def body(batch: Any, logs: Any) -> None:
        async def refused(resources: list[dict[str, str]], **props: Any) -> str:
            with pytest.raises(ClientError) as info:
                await batch.register_job_definition(
                    jobDefinitionName="on-fargate",
                    type="container",
                    platformCapabilities=["FARGATE"],
                    containerProperties={"image": "python:3.11-slim", "command": ["true"],
                                         "resourceRequirements": resources, **props},
                )  # fmt: skip
            return str(info.value)

        role = {"executionRoleArn": "arn:aws:iam::123456789012:role/ecsTaskExecutionRole"}
        assert "executionRoleArn is required" in await refused(
            [{"type": "VCPU", "value": "1"}, {"type": "MEMORY", "value": "2048"}]
        )
        assert "not a supported combination" in await refused(
            [{"type": "VCPU", "value": "1"}, {"type": "MEMORY", "value": "1024"}], **role
        )
        assert "not a supported combination" in await refused(
            [{"type": "VCPU", "value": "3"}, {"type": "MEMORY", "value": "8192"}], **role
        )
        assert "GPUs aren't available" in await refused(
            [{"type": "VCPU", "value": "1"}, {"type": "MEMORY", "value": "2048"},
             {"type": "GPU", "value": "1"}], **role,
        )  # fmt: skip
        made = await batch.register_job_definition(
            jobDefinitionName="on-fargate",
            type="container",
            platformCapabilities=["FARGATE"],
            containerProperties={
                "image": "python:3.11-slim",
                "command": ["sh", "-c", "echo $AWS_EXECUTION_ENV"],
                "resourceRequirements": [
                    {"type": "VCPU", "value": "0.25"},
                    {"type": "MEMORY", "value": "512"},
                ],
                "networkConfiguration": {"assignPublicIp": "DISABLED"},
                **role,
            },
        )
        # A queue runs EC2 or Fargate jobs, not both.
        ec2 = await register(batch)
        with pytest.raises(ClientError, match="cannot run job definition"):
            await batch.submit_job(jobName="j", jobQueue="fargate-queue", jobDefinition=ec2)
        with pytest.raises(ClientError, match="cannot run job definition"):
            await batch.submit_job(
                jobName="j", jobQueue=QUEUE, jobDefinition=made["jobDefinitionArn"]
            )
        r = await batch.submit_job(
            jobName="j", jobQueue="fargate-queue", jobDefinition=made["jobDefinitionArn"]
        )
        job, _ = await wait_final(batch, r["jobId"])
        assert await log_messages(logs, job["container"]["logStreamName"]) == ["AWS_ECS_FARGATE"]
        queue = (await batch.describe_job_queues(jobQueues=["fargate-queue"]))["jobQueues"][0]
        (order,) = queue["computeEnvironmentOrder"]
        envs = await batch.describe_compute_environments(
            computeEnvironments=[order["computeEnvironment"]]
        )
        assert envs["computeEnvironments"][0]["computeResources"]["type"] == "FARGATE"

    run(batch_endpoint, moto_s3_endpoint, body)
    assert not batch_endpoint.schema_errors
