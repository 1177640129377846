"""@batch end to end: flows run with their remote steps on the AWS Batch emulator
(tests/fakes/batch_server.py), data through moto's S3, logs through moto's CloudWatch Logs."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time
from pathlib import Path

import anyio
import pytest

from aflow import namespace, run_flow, start_flow
from aflow.client.core import AsyncTask
from aflow.engine.events import OutputLine
from aflow.engine.flow_loader import load_flow_file
from aflow.exception import AflowException
from aflow.stores.factory import open_store

FLOWS = Path(__file__).parent / "remote_flows"


@pytest.fixture
def on_batch(batch_endpoint, s3_datastore, monkeypatch):
    monkeypatch.setenv("AFLOW_BATCH_ENDPOINT_URL", batch_endpoint.url)
    monkeypatch.setenv("AFLOW_LOGS_ENDPOINT_URL", batch_endpoint.logs_url)  # checked, throttled
    monkeypatch.setenv("AFLOW_BATCH_JOB_QUEUE", "aflow-test-queue")
    monkeypatch.setenv("AFLOW_BATCH_IAM_ROLE", "arn:aws:iam::123456789012:role/aflow-task")
    monkeypatch.setenv("AFLOW_BATCH_POLL_SECONDS", "0.1")
    monkeypatch.setenv("AFLOW_TEST_COMPUTE", "batch")
    batch_endpoint.parallelism = 8
    datastore, root = s3_datastore
    monkeypatch.setenv("AFLOW_DEFAULT_DATASTORE", datastore)
    monkeypatch.setenv("AFLOW_DATASTORE_SYSROOT_S3", root)
    namespace(None)
    return batch_endpoint


def run(name: str, **params):
    flow_cls = load_flow_file(str(FLOWS / f"{name}.py"))
    result = anyio.run(lambda: run_flow(flow_cls, params))
    if not result.successful:  # say why, in the test's output
        print(result.error if hasattr(result, "error") else result)
        for step in result:
            for task in step:
                print(task.pathspec, task.stderr)
    return result


def test_list_goes_to_batch_and_back(on_batch):
    result = run("remote_list")
    assert result.successful, result
    assert result["end"].task.data.result == 12
    submits = on_batch.calls("SubmitJob")
    assert len(submits) == 1 and "arrayProperties" not in submits[0]
    task = result["double"].task
    assert "doubling on double: [2, 4, 6]" in task.stdout
    # It ran as the emulator's container process, whose output went through CloudWatch Logs.
    (job,) = on_batch.jobs.values()
    assert job.status == "SUCCEEDED"
    assert "doubling on double: [2, 4, 6]" in on_batch.log_lines(job.job_id)
    assert (task.backend, task.job_id) == ("batch", job.job_id)
    assert result["start"].task.backend == "local"


def test_temporary_credentials_keep_jobs_under_the_override_limit(on_batch, monkeypatch):
    # Under SSO, an assumed role or an instance profile, every presigned URL carries a session
    # token of 1,000+ characters; Batch fails a job whose command and environment pass 8,192.
    monkeypatch.setenv("AWS_SESSION_TOKEN", "IQoJb3JpZ2luX2VjE" + "Ab9+/" * 260)
    monkeypatch.setattr("aflow.stores.s3._session", None)  # credentials are read afresh
    result = run("remote_foreach", width=3)
    assert result.successful, result
    (definition,) = on_batch.calls("RegisterJobDefinition")
    command = definition["containerProperties"]["command"]
    assert len("".join(command)) < 1000  # a stub that fetches the bootstrap, not the bootstrap
    (submit,) = on_batch.calls("SubmitJob")
    env = submit["containerOverrides"]["environment"]
    url = next(e["value"] for e in env if e["name"] == "AFLOW_BOOT_URL")
    assert "X-Amz-Security-Token" in url and "X-Amz-Algorithm=AWS4-HMAC-SHA256" in url  # SigV4
    # What Batch hands ECS (and DescribeJobs repeats for each child): the stub and the
    # environment, with room to spare under 8,192 for the user's own variables.
    parent = next(iter(on_batch.jobs))
    container = on_batch.describe(f"{parent}:0")["container"]
    overrides = {"command": container["command"], "environment": container["environment"]}
    assert len(json.dumps(overrides)) < 5000


HALF_FLOW = """
from aflow import FlowSpec, batch, resources, step


class HalfFlow(FlowSpec):
    @step
    def start(self):
        self.next(self.half)

    @resources(cpu=0.5, memory=512)
    @batch
    @step
    def half(self):
        print("on half a cpu")
        self.next(self.end)

    @step
    def end(self):
        pass
"""


def run_file(path: Path):
    return anyio.run(lambda: run_flow(load_flow_file(str(path)), {}))


def test_whole_vcpus_and_the_log_group_setting(on_batch, monkeypatch, tmp_path):
    (tmp_path / "half.py").write_text(HALF_FLOW)
    monkeypatch.setenv("AFLOW_BATCH_LOG_GROUP", "/aflow/test-jobs")
    result = run_file(tmp_path / "half.py")
    assert result.successful, result
    (definition,) = on_batch.calls("RegisterJobDefinition")
    props = definition["containerProperties"]
    assert {"type": "VCPU", "value": "1"} in props["resourceRequirements"]  # EC2: whole vCPUs
    assert props["logConfiguration"]["options"]["awslogs-group"] == "/aflow/test-jobs"
    (job,) = on_batch.jobs.values()
    assert on_batch._log_target(job)[0] == "/aflow/test-jobs"
    assert "on half a cpu" in result["half"].task.stdout


def test_no_job_role_is_warned_before_the_container_finds_no_credentials(
    on_batch, monkeypatch, tmp_path
):
    (tmp_path / "half.py").write_text(HALF_FLOW)
    monkeypatch.delenv("AFLOW_BATCH_IAM_ROLE")
    result = run_file(tmp_path / "half.py")
    assert not result.successful
    log = result["half"].task.stderr
    assert "has no job role (@batch(iam_role=...) or AFLOW_BATCH_IAM_ROLE)" in log, log


FARGATE_FLOW = """
from aflow import FlowSpec, batch, resources, step


class FargateFlow(FlowSpec):
    @step
    def start(self):
        self.next(self.work)

    @resources(cpu=3, memory=5000)
    @batch
    @step
    def work(self):
        import os
        print("running on", os.environ.get("AWS_EXECUTION_ENV"))
        self.next(self.end)

    @step
    def end(self):
        pass
"""


def test_a_fargate_queue_gets_fargate_job_definitions(on_batch, monkeypatch, tmp_path):
    on_batch.add_queue("fargate-queue", "fargate-ce", "FARGATE")
    monkeypatch.setenv("AFLOW_BATCH_JOB_QUEUE", "fargate-queue")
    monkeypatch.setenv("AFLOW_BATCH_EXECUTION_ROLE", "arn:aws:iam::123456789012:role/ecsExec")
    (tmp_path / "fargate.py").write_text(FARGATE_FLOW)
    result = run_file(tmp_path / "fargate.py")
    assert result.successful, result
    assert "running on AWS_ECS_FARGATE" in result["work"].task.stdout
    (definition,) = on_batch.calls("RegisterJobDefinition")
    assert definition["platformCapabilities"] == ["FARGATE"]
    props = definition["containerProperties"]
    # 3 vCPU and 5,000 MiB asked: the smallest pair Fargate has that holds them.
    got = {r["type"]: r["value"] for r in props["resourceRequirements"]}
    assert got == {"VCPU": "4", "MEMORY": "8192"}
    assert props["executionRoleArn"].endswith("role/ecsExec")
    assert props["networkConfiguration"] == {"assignPublicIp": "DISABLED"}
    assert "4 vCPU and 8192 MiB given" in result["work"].task.stderr
    assert len(on_batch.calls("DescribeJobQueues")) == 1  # asked once per run
    assert not on_batch.schema_errors


def test_a_fargate_queue_without_an_execution_role_is_refused_before_submission(
    on_batch, monkeypatch, tmp_path
):
    on_batch.add_queue("fargate-queue", "fargate-ce", "FARGATE_SPOT")
    monkeypatch.setenv("AFLOW_BATCH_JOB_QUEUE", "fargate-queue")
    monkeypatch.delenv("AFLOW_BATCH_EXECUTION_ROLE", raising=False)
    (tmp_path / "fargate.py").write_text(FARGATE_FLOW)
    result = run_file(tmp_path / "fargate.py")
    assert not result.successful
    log = result["work"].task.stderr
    assert "job queue 'fargate-queue' runs on Fargate (compute environment fargate-ce)" in log, log
    assert "@batch(execution_role=ARN) or set AFLOW_BATCH_EXECUTION_ROLE" in log, log
    assert not on_batch.calls("SubmitJob") and not on_batch.calls("RegisterJobDefinition")


def test_array_children_spawned_late_are_not_lost(on_batch, monkeypatch):
    # Batch spawns an array's children asynchronously: for a while none is describable.
    monkeypatch.setattr("aflow.backends.batch.LOST_AFTER_ROUNDS", 5)  # ~1 s of polls at 0.1 s
    on_batch.child_spawn_delay = 6.0
    result = run("remote_foreach", width=3)
    assert result.successful, result
    assert len(list(result["square"])) == 3


def test_logs_never_polled_per_task_and_never_gate_completion(on_batch):
    result = run("remote_foreach", width=12)
    assert result.successful, result
    # Each child's output came from what its runtime saved to the store, not from CloudWatch.
    for task in result["square"]:
        assert f"squared is {task.data.value}" in task.stdout
    assert on_batch.logs_calls["GetLogEvents"] == 0
    assert not on_batch.schema_errors


def test_a_running_tasks_lines_reach_the_terminal_and_its_log_before_it_ends(on_batch, tmp_path):
    # The step waits until the test has seen its line: it succeeds only if the line was tailed
    # from what the runtime saved while the step still ran (no CloudWatch reads).
    release = tmp_path / "release"
    flow_cls = load_flow_file(str(FLOWS / "remote_tail.py"))

    async def main():
        async with start_flow(flow_cls, {"release": str(release)}) as running:
            async for event in running.events():
                if isinstance(event, OutputLine) and "waiting for the scheduler" in event.line:
                    break
            # `aflow logs` reads the task's saved log: the line is there while the task runs.
            flow, run_id, step, task_id = event.pathspec.split("/")
            store = open_store("s3", None)
            task = AsyncTask(store, flow, run_id, step, task_id)
            with anyio.fail_after(60):
                while not any("waiting for" in ln.text for ln in await task.at_attempt(0).log()):
                    await anyio.sleep(0.2)
            await store.aclose()
            release.write_text("seen")
            async for _ in running.events():
                pass
        return await running.wait()

    result = anyio.run(main)
    assert result.successful, result
    stdout = result["wait"].task.stdout
    assert stdout.count("waiting for the scheduler") == 1 and "released" in stdout, stdout
    assert on_batch.logs_calls["GetLogEvents"] == 0


def test_a_container_that_fails_before_the_runtime_has_its_cloudwatch_lines(on_batch, monkeypatch):
    # An image whose Python is older than aflow needs: the bootstrap says so and exits, before
    # aflow's runtime could save anything; its words come from CloudWatch, read to the end of the
    # stream through empty pages and the account's rate limit.
    monkeypatch.setattr("aflow.backends.remote.min_python", lambda: "3.99")
    on_batch.logs_empty_every = 2
    result = run("remote_list")
    assert not result.successful
    log = result["double"].task.stderr + result["double"].task.stdout
    assert "aflow needs 3.99 or newer" in log, log
    # Through an empty page to the real end (a token sent back unchanged), not 100 pages.
    assert 3 <= on_batch.logs_calls["GetLogEvents"] <= 10, on_batch.logs_calls
    assert not on_batch.schema_errors


def test_numpy_array_summed_remotely(on_batch):
    result = run("remote_numpy")
    assert result.successful
    assert result["total"].task.data.sum == 499999500000.0


def test_wide_foreach_is_one_array_job(on_batch):
    result = run("remote_foreach", width=100)
    assert result.successful, result
    submits = on_batch.calls("SubmitJob")
    assert len(submits) == 1
    assert submits[0]["arrayProperties"] == {"size": 100}
    assert len(list(result["square"])) == 100
    # One poller: never more than ceil(100/100) = 1 DescribeJobs call per poll.
    describes = on_batch.calls("DescribeJobs")
    assert all(len(c["jobs"]) <= 100 for c in describes)


def test_retry_resubmits_and_catch_records(on_batch):
    result = run("remote_retry_catch")
    assert result.successful, result
    flaky = result["flaky"].task
    assert flaky.data.attempts == 2
    caught = result["doomed"].task.data.failure
    assert "this step always fails" in str(caught)
    # attempt 0 and 1 of flaky, attempt 0 of doomed (its failure caught in that attempt)
    assert len(on_batch.calls("SubmitJob")) >= 3


def test_request_shape(on_batch):
    result = run("remote_shape")
    assert result.successful
    (definition,) = on_batch.calls("RegisterJobDefinition")
    props = definition["containerProperties"]
    assert props["image"] == "example.org/team/trainer:1.2"
    got = {r["type"]: r["value"] for r in props["resourceRequirements"]}
    assert got == {"VCPU": "4", "MEMORY": "32000", "GPU": "1"}
    (submit,) = on_batch.calls("SubmitJob")
    assert submit["jobQueue"] == "aflow-test-queue"


def test_local_datastore_refused_before_anything_runs(batch_endpoint, monkeypatch, tmp_path):
    monkeypatch.setenv("AFLOW_TEST_COMPUTE", "batch")
    monkeypatch.setenv("AFLOW_BATCH_JOB_QUEUE", "q")
    flow_cls = load_flow_file(str(FLOWS / "remote_list.py"))
    with pytest.raises(AflowException, match=r"step 'double' runs on @batch.*--datastore s3"):
        anyio.run(lambda: run_flow(flow_cls, datastore="local", datastore_root=str(tmp_path)))
    assert not batch_endpoint.calls("SubmitJob")


def test_no_queue_refused(s3_datastore, monkeypatch):
    monkeypatch.setenv("AFLOW_TEST_COMPUTE", "batch")
    monkeypatch.delenv("AFLOW_BATCH_JOB_QUEUE", raising=False)
    datastore, root = s3_datastore
    flow_cls = load_flow_file(str(FLOWS / "remote_list.py"))
    with pytest.raises(AflowException, match="step 'double': @batch needs a job queue"):
        anyio.run(lambda: run_flow(flow_cls, datastore=datastore, datastore_root=root))


def test_cancel_mid_foreach_terminates_every_job(on_batch):
    flow_cls = load_flow_file(str(FLOWS / "remote_foreach.py"))

    async def main() -> None:
        with anyio.move_on_after(60):
            async with anyio.create_task_group() as tg:
                tg.start_soon(lambda: run_flow(flow_cls, {"width": 12, "sleep": 60}))
                while len([j for j in on_batch.active_jobs() if j.status == "RUNNING"]) < 4:
                    await anyio.sleep(0.1)
                tg.cancel_scope.cancel()

    anyio.run(main)
    # The run's own exit terminated the array job: nothing runs, nothing waits.
    assert on_batch.calls("TerminateJob")
    deadline = time.monotonic() + 15
    while (on_batch.active_jobs() or on_batch.live_processes()) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not on_batch.active_jobs() and not on_batch.live_processes()


def test_oom_killed_job_says_why(on_batch):
    on_batch.inject_failure("oom", match=lambda job: "double" in job.name)
    result = run("remote_list")
    assert not result.successful
    text = str(result.error)
    assert "OutOfMemoryError" in text or "137" in text, text


def test_stuck_in_runnable_is_reported(on_batch, monkeypatch, capfd):
    monkeypatch.setenv("AFLOW_REMOTE_STUCK_SECONDS", "1")
    on_batch.hold_runnable()

    def release_later() -> None:
        # Held a while after it reached RUNNABLE (not after the test began: on a loaded machine
        # the flow's first step alone can take seconds).
        while not any(j.status == "RUNNABLE" for j in on_batch.jobs.values()):
            time.sleep(0.1)
        time.sleep(5)
        on_batch.release()

    threading.Thread(target=release_later, daemon=True).start()
    result = run("remote_list")
    assert result.successful
    log = result["double"].task.stderr
    assert "has been RUNNABLE for" in log and "compute environment" in log, log


def test_cli_with_batch_runs_every_step_remotely(on_batch, tmp_path):
    flow = tmp_path / "plain.py"
    flow.write_text(
        "from aflow import FlowSpec, step\n\n"
        "class PlainFlow(FlowSpec):\n"
        "    @step\n"
        "    def start(self):\n"
        "        import os\n"
        "        print('job', os.environ.get('AWS_BATCH_JOB_ID'))\n"
        "        self.next(self.end)\n\n"
        "    @step\n"
        "    def end(self):\n"
        "        pass\n\n"
        "if __name__ == '__main__':\n"
        "    PlainFlow()\n"
    )
    r = subprocess.run(
        [sys.executable, str(flow), "run", "--with", "batch:cpu=2,queue=aflow-test-queue"],
        capture_output=True,
        text=True,
        timeout=300,  # a hang guard only: two containers start one after the other, under load
        env={**os.environ},
    )
    assert r.returncode == 0, r.stderr
    assert len(on_batch.calls("SubmitJob")) == 2
    assert "job " in r.stdout + r.stderr and "job None" not in r.stdout + r.stderr


def test_throttled_describe_calls_are_retried(on_batch):
    on_batch.throttle(count=3, operation="DescribeJobs")
    result = run("remote_list")
    assert result.successful
    statuses = [r.status for r in on_batch.requests if r.operation == "DescribeJobs"]
    assert statuses.count(429) == 3 and statuses[-1] == 200


def test_evicted_job_is_a_platform_failure_that_retry_resubmits(on_batch, tmp_path):
    on_batch.inject_failure("eviction", match=lambda job: "flaky" in job.name)
    result = run("remote_retry_catch")
    assert result.successful, result
    # The eviction took attempt 0 (its step never failed: the platform did); attempt 1 ran.
    flaky = result["flaky"].task
    assert flaky.current_attempt == 1 and flaky.data.attempts == 2
    jobs = [j for j in on_batch.jobs.values() if "flaky" in j.name]
    assert [j.status for j in jobs] == ["FAILED", "SUCCEEDED"]
    assert "terminated" in (jobs[0].status_reason or "").lower()


def test_pypi_environment_is_recreated_in_the_container_from_its_lock(on_batch, tmp_path, monkeypatch):
    monkeypatch.setenv("AFLOW_ENV_CACHE", str(tmp_path / "local-envs"))
    on_batch.base_env["AFLOW_ENV_CACHE"] = str(tmp_path / "container-envs")
    result = run("remote_pypi")
    assert result.successful, result
    task = result["check"].task
    assert task.data.six_version == "1.16.0"
    assert task.data.python.startswith(str(tmp_path / "container-envs"))
    record = anyio.run(task._core.record_or_none)
    assert record.image == "example.org/team/base:3" and record.env_key
    # Resolved for the container's platform, not made here: no local venv for a remote step.
    assert not (tmp_path / "local-envs" / record.env_key / "bin").exists()
    assert "made environment" in task.stdout


def test_timeout_counts_from_the_start_of_the_step_not_its_wait_in_the_queue(on_batch):
    on_batch.hold_runnable()
    threading.Timer(5, on_batch.release).start()  # 5 s in RUNNABLE, more than the 3 s @timeout
    assert run("remote_timeout").successful

    started = time.monotonic()
    result = run("remote_timeout", sleep=60)
    assert not result.successful and time.monotonic() - started < 40
    assert "TimeoutException: the step ran longer than 3 s (@timeout)" in str(result.error)


def test_the_modules_a_container_checks_are_named_as_they_import():
    # The bootstrap installs a requirement when its module does not import: a wrong module name
    # (markdown_it_py for markdown-it-py) installed it again in every container.
    import importlib

    from aflow.requirements import requirements_for

    for pair in requirements_for("s3").split(";"):
        module, _, requirement = pair.partition("=")
        assert importlib.util.find_spec(module) is not None, (module, requirement)


def test_no_presigned_url_in_job_descriptions_when_presigning_is_off(on_batch, monkeypatch):
    # AFLOW_PRESIGN_SECONDS=0: nobody who can read DescribeJobs gets a URL to the run's code; the
    # container (its image has aflow) reads through the datastore with its own job role.
    monkeypatch.setenv("AFLOW_PRESIGN_SECONDS", "0")
    result = run("remote_foreach", width=3)
    assert result.successful, result
    (submit,) = on_batch.calls("SubmitJob")
    names = {e["name"] for e in submit["containerOverrides"]["environment"]}
    assert "AFLOW_BOOT_URL" not in names and "AFLOW_BOOT_KEY" in names
    parent = next(iter(on_batch.jobs))
    assert "X-Amz-Signature" not in json.dumps(on_batch.describe(f"{parent}:0"))


def test_a_slowly_draining_array_is_not_described_whole_every_round(on_batch, monkeypatch):
    # A 60-way array run 4 children at a time, described 10 ids a call: each round that its parent
    # says changed used to describe every unfinished child (60, 56, ... ids a round: O(N) a round
    # for the whole drain); it now describes those seen running and a window of the rest.
    monkeypatch.setattr("aflow.backends.batch.DESCRIBE_LIMIT", 10)
    on_batch.parallelism = 4
    result = run("remote_foreach", width=60)
    assert result.successful, result
    assert len(list(result["square"])) == 60
    rounds: list[list[str]] = []  # a round's first call holds the parent's id (see _poll)
    for call in on_batch.calls("DescribeJobs"):
        ids = call["jobs"]
        if any(":" not in i for i in ids):
            rounds.append([])
        if rounds:
            rounds[-1] += [i for i in ids if ":" in i]
    array_rounds = [r for r in rounds if r]
    assert len(array_rounds[0]) == 60  # the first look: every child once
    widest = max(len(r) for r in array_rounds[1:])
    assert widest <= 30, f"a round described {widest} of the 60 children"
    assert not on_batch.schema_errors
