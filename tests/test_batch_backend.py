"""@batch end to end: flows run with their remote steps on the AWS Batch emulator
(tests/fakes/batch_server.py), data through moto's S3, logs through moto's CloudWatch Logs."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import anyio
import pytest

from aflow import Flow, namespace, run_flow
from aflow.engine.flow_loader import load_flow_file
from aflow.exception import AflowException

FLOWS = Path(__file__).parent / "remote_flows"


@pytest.fixture
def on_batch(batch_endpoint, s3_datastore, monkeypatch):
    monkeypatch.setenv("AFLOW_BATCH_ENDPOINT_URL", batch_endpoint.url)
    monkeypatch.setenv("AFLOW_LOGS_ENDPOINT_URL", batch_endpoint.logs_endpoint)
    monkeypatch.setenv("AFLOW_BATCH_JOB_QUEUE", "aflow-test-queue")
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
    # attempt 0 and 1 of flaky, attempt 0 of doomed, and its @catch fallback
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
