"""The @kubernetes backend (aflow/backends/k8s/) end to end: flows run through the CLI or
`aflow.run_flow` with an S3 datastore on moto, against the Kubernetes API emulator
(tests/fakes/k8s_server.py), whose pods are local processes running the real container bootstrap.

What is checked is what a user sees (results, logs, failures) and what the cluster was asked (the
emulator's recorded requests): one Job per group, Indexed for a foreach, one watch, no polling.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path
from typing import Any

import anyio
import pytest

pytest.importorskip("kubernetes_asyncio")

from conftest import run_cli
from k8s_support import job_posts, run, store_options

import aflow
from aflow.engine.events import OutputLine, TaskFailed, TaskFinished

FLOWS = Path(__file__).resolve().parent / "remote_flows"
sys.path.insert(0, str(FLOWS))


def test_local_to_kubernetes_and_back_passing_a_list_and_an_array(k8s: Any, tmp_path: Path) -> None:
    datastore, root = k8s.store
    id_file = tmp_path / "run_id"
    flow = str(FLOWS / "k8s_linear.py")
    done = run_cli(
        "run", flow, "--datastore", datastore, "--datastore-root", root, "--run-id-file", str(id_file)
    )
    assert done.returncode == 0, done.stderr + done.stdout
    assert "summed remotely in aflow-remote-" in done.stdout  # the pod's print, live on the terminal
    assert "end 10 [1, 2, 3, 4, 5] 31249875000.0 62499750000.0" in done.stdout

    run_obj = aflow.Run(f"K8sLinearFlow/{id_file.read_text().strip()}", **store_options(k8s))
    data = run_obj["remote"].task.data
    assert data.in_pod and data.pod.startswith("aflow-remote-")
    assert run_obj["remote"].task.job_id == data.pod  # the record says where it ran
    assert data.total == 10 and data.matrix_sum == 31249875000.0
    assert float(data.doubled.sum()) == 62499750000.0

    [post] = job_posts(k8s)
    spec = post.body["spec"]
    assert "completionMode" not in spec and spec["completions"] == spec["parallelism"] == 1
    assert spec["backoffLimit"] == 0
    pod = spec["template"]["spec"]
    assert pod["restartPolicy"] == "Never"
    env = {e["name"]: e.get("value") for e in pod["containers"][0]["env"]}
    assert env["AFLOW_RECORDED_FAILURE_EXIT"] == "0" and env["AFLOW_TASK_INDEX"] == "0"
    assert pod["containers"][0]["resources"]["limits"] == {"cpu": "500m", "memory": "512Mi"}
    labels = spec["template"]["metadata"]["labels"]
    assert labels["aflow.io/flow"] == "K8sLinearFlow" and labels["aflow.io/step"] == "remote"
    assert labels["aflow.io/run-id"] == id_file.read_text().strip()
    # One watch of pods for the whole run (and one of Jobs), no polling of single pods.
    pod_watches = k8s.calls("GET", r"/pods$", watch=True)
    assert len(pod_watches) == 1
    assert pod_watches[0].query["labelSelector"] == f"aflow.io/run={labels['aflow.io/run']}"
    assert len(k8s.calls("GET", r"/jobs$", watch=True)) == 1
    assert not k8s.calls("GET", r"/pods/[^/]+$") and not k8s.calls("GET", r"/jobs/[^/]+$")


def test_100_way_foreach_is_one_indexed_job_joined_locally(k8s: Any) -> None:
    from k8s_foreach import K8sForeachFlow

    # Short server-side watches: the watch must resume from its last resourceVersion without
    # losing a pod's event.
    k8s.watch_timeout = 1.0
    # 100 pods are 100 Python processes: minutes on a loaded 2-core machine.
    result, _ = run(K8sForeachFlow, k8s, timeout=400, params={"width": 100}, max_workers=16)
    assert result.successful
    assert result["join"].task.data.squares == [i * i for i in range(100)]

    [post] = job_posts(k8s, "work")
    spec = post.body["spec"]
    assert spec["completionMode"] == "Indexed"
    assert (spec["completions"], spec["parallelism"], spec["backoffLimitPerIndex"]) == (100, 16, 0)
    assert "backoffLimit" not in spec  # unlimited: 0 would fail the whole Job on one lost pod
    assert k8s.peak_running(post.body["metadata"]["name"]) <= 16
    assert len(job_posts(k8s)) == 1  # start, join and end ran locally
    watches = k8s.calls("GET", r"/pods$", watch=True)
    assert len(watches) > 1  # resumed after each server-side end
    assert all(w.query["resourceVersion"] not in ("", "0") for w in watches)
    assert len(k8s.calls("GET", r"/pods$", watch=False)) == 1  # listed once, at the start
    # One follow per pod; one that came before the container started (400) is reopened once.
    follows = k8s.calls("GET", r"/pods/.+/log$")
    assert len({r.path for r in follows}) <= 100 and len(follows) <= 200


def test_retry_on_a_flaky_remote_step_and_catch_fallback(k8s: Any) -> None:
    from k8s_retry_catch import K8sRetryCatchFlow

    result, events = run(K8sRetryCatchFlow, k8s)
    assert result.successful
    data = result["join"].task.data
    assert data.attempt == 1
    assert "this step always fails" in str(data.error)
    failed = [e for _, e in events if isinstance(e, TaskFailed)]
    assert any("first attempt fails" in e.message and e.retrying for e in failed)
    # Every attempt is a Job of its own: flaky twice; doomed once, its failure caught in that attempt.
    assert len(job_posts(k8s, "flaky")) == 2
    assert len(job_posts(k8s, "doomed")) == 1


def test_resources_and_scheduling_settings_shape_the_job(k8s: Any) -> None:
    from k8s_resources import K8sResourcesFlow

    k8s.add_service_account("ml-jobs", "trainer")  # else its pods are refused (FailedCreate)
    result, _ = run(K8sResourcesFlow, k8s)
    assert result.successful and result["train"].task.data.trained
    [post] = job_posts(k8s)
    assert post.path == "/apis/batch/v1/namespaces/ml-jobs/jobs"
    pod = post.body["spec"]["template"]["spec"]
    [container] = pod["containers"]
    assert container["image"] == "x"
    wanted = {"cpu": "4", "memory": "32000Mi", "nvidia.com/gpu": "1", "ephemeral-storage": "10240Mi"}
    assert container["resources"] == {"requests": wanted, "limits": wanted}
    assert container["command"][:2] == ["python3", "-c"]
    assert pod["serviceAccountName"] == "trainer"
    assert pod["nodeSelector"] == {"pool": "gpu", "zone": "a"}
    toleration = {"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"}
    assert pod["tolerations"] == [toleration]
    labels = post.body["spec"]["template"]["metadata"]["labels"]
    assert labels["team"] == "vision" and labels["example.com/cost-center"] == "r-and-d"
    assert all(len(v) <= 63 for v in labels.values())
    assert len(post.body["metadata"]["name"]) <= 52
    # The namespace in use is the one watched.
    assert {r.path for r in k8s.calls("GET", r"/pods$", watch=True)} == {
        "/api/v1/namespaces/ml-jobs/pods"
    }


def test_invalid_label_is_refused_before_the_run(k8s: Any) -> None:
    from k8s_bad_label import K8sBadLabelFlow

    with pytest.raises(aflow.exception.AflowException) as refused:
        run(K8sBadLabelFlow, k8s)
    assert "k8s_bad_label.py:" in str(refused.value)  # the step's file:line
    assert "step 'remote': @kubernetes label team='not a valid value!'" in str(refused.value)
    assert job_posts(k8s) == []


def test_remote_log_lines_arrive_live_and_are_saved(k8s: Any) -> None:
    from k8s_logs import K8sLogsFlow

    result, events = run(K8sLogsFlow, k8s)
    assert result.successful
    ticks = [(t, e) for t, e in events if isinstance(e, OutputLine) and e.line.startswith("tick")]
    assert [e.line for _, e in ticks] == [f"tick {i}" for i in range(4)]
    assert all(e.stream == "stdout" for _, e in ticks)
    [(finished, _)] = [
        (t, e) for t, e in events if isinstance(e, TaskFinished) and "/talk/" in e.pathspec
    ]
    # Streamed while the pod ran (four lines 0.4 s apart), not delivered when it ended.
    assert ticks[-1][0] - ticks[0][0] > 0.8
    assert finished - ticks[0][0] > 1.0
    stdout = result["talk"].task.stdout
    assert "tick 0" in stdout and "tick 3" in stdout and "last words" in stdout


def test_oom_killed_pod_reports_the_reason_and_keeps_its_last_lines(k8s: Any) -> None:
    from k8s_logs import K8sLogsFlow

    k8s.oom_next_pod(after=60)  # killed when its process ends (right after its last words)
    result, events = run(K8sLogsFlow, k8s, params={"crash": True})
    assert not result.successful
    [failed] = [e for _, e in events if isinstance(e, TaskFailed)]
    assert "OOMKilled" in failed.message and "memory" in failed.message
    assert "256Mi" in failed.message  # its limit, and what to change
    # The pod died right after printing: its last lines are in the task's saved log all the same.
    task = aflow.Task(failed.pathspec, **store_options(k8s))
    assert "last words" in task.stdout


def test_one_oom_killed_child_fails_alone_and_only_it_is_retried(k8s: Any) -> None:
    """backoffLimitPerIndex 0: the OOM-killed child's index fails alone, its siblings run to
    success in the same Job (none rerun), the Job's final Failed (FailedIndexes) fails none of
    them, and @retry resubmits the OOM-killed child alone."""
    from k8s_foreach import K8sForeachFlow

    k8s.oom_next_pod(after=0.5)
    result, events = run(
        K8sForeachFlow,
        k8s,
        params={"width": 3, "sleep": 1.0},
        with_decorators=["retry:times=1,minutes_between_retries=0"],
    )
    failed = [e for _, e in events if isinstance(e, TaskFailed)]
    assert result.successful, failed
    assert result["join"].task.data.squares == [0, 1, 4]
    [oom] = failed
    assert oom.retrying and "OOMKilled" in oom.message and "256Mi" in oom.message
    assert "FailedIndexes" not in oom.message  # its own reason, not the Job's
    finished = [e for _, e in events if isinstance(e, TaskFinished) and "/work/" in e.pathspec]
    assert sorted(e.attempt for e in finished) == [0, 0, 1]  # siblings once, the OOM'd child twice

    first, second = job_posts(k8s, "work")
    assert first.body["spec"]["completionMode"] == "Indexed"
    assert first.body["spec"]["completions"] == 3
    assert "completionMode" not in second.body["spec"] and second.body["spec"]["completions"] == 1
    assert second.body["spec"]["backoffLimit"] == 0
    job = k8s.job(first.body["metadata"]["name"])
    assert job is not None
    [cond] = [c for c in job["status"]["conditions"] if c["type"] == "Failed"]
    assert cond["reason"] == "FailedIndexes"
    lost = job["status"]["failedIndexes"]
    others = {"0": "1-2", "1": "0,2", "2": "0-1"}  # as intervals
    assert job["status"]["completedIndexes"] == others[lost]
    assert job["status"]["failed"] == 1 and job["status"]["succeeded"] == 2


def test_failed_indexed_job_finishes_the_indexes_that_never_ran(
    k8s: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    from fakes import k8s_server
    from k8s_foreach import K8sForeachFlow

    # A pre-1.29 API server: no backoffLimitPerIndex, so an Indexed Job has backoffLimit 0.
    # One pod at a time; the first is OOM-killed, so the Job fails and the controller never
    # makes pods for indexes 1 and 2: their tasks fail too, and @retry reruns all three as new
    # Jobs.
    monkeypatch.setitem(k8s_server.VERSION, "minor", "28")
    k8s.oom_next_pod()
    result, events = run(
        K8sForeachFlow,
        k8s,
        params={"width": 3},
        max_workers=1,
        with_decorators=["retry:times=1,minutes_between_retries=0"],
    )
    assert result.successful, [e for _, e in events if isinstance(e, TaskFailed)]
    assert result["join"].task.data.squares == [0, 1, 4]
    failed = sorted((e for _, e in events if isinstance(e, TaskFailed)), key=lambda e: e.pathspec)
    assert len(failed) == 3 and all(e.retrying for e in failed)
    assert "OOMKilled" in failed[0].message
    assert all("never ran" in e.message and "BackoffLimitExceeded" in e.message for e in failed[1:])
    spec = job_posts(k8s, "work")[0].body["spec"]
    assert spec["backoffLimit"] == 0 and "backoffLimitPerIndex" not in spec


def test_cancelling_a_run_mid_foreach_leaves_no_pod_running(k8s: Any) -> None:
    from k8s_foreach import K8sForeachFlow

    async def go() -> None:
        async with anyio.create_task_group() as tg:

            async def flow() -> None:
                await aflow.run_flow(
                    K8sForeachFlow, params={"width": 3, "sleep": 60.0}, **store_options(k8s)
                )

            tg.start_soon(flow)
            with anyio.fail_after(60):
                while True:  # until every child's process runs
                    pods = await anyio.to_thread.run_sync(k8s.pods)
                    running = [p for p in pods if p["status"].get("phase") == "Running"]
                    if len(running) == 3:
                        break
                    await anyio.sleep(0.1)
            assert len(await anyio.to_thread.run_sync(k8s.alive_pids)) == 3
            tg.cancel_scope.cancel()

    anyio.run(go)
    [delete] = k8s.calls("DELETE", r"/jobs/")
    assert delete.query.get("propagationPolicy") == "Background"
    deadline = time.monotonic() + 15
    while k8s.alive_pids() and time.monotonic() < deadline:
        time.sleep(0.1)
    assert k8s.alive_pids() == []
    assert k8s.pods() == []
    run_obj = aflow.Flow("K8sForeachFlow", **store_options(k8s)).latest_run
    assert run_obj.status == "cancelled"


def test_expired_watch_is_listed_again(k8s: Any, s3_datastore: tuple[str, str]) -> None:
    """A watch from a resourceVersion the server has compacted away gets a 410 ERROR event: the
    backend lists again (and takes the list's version) rather than failing or missing changes."""
    from kubernetes_asyncio import client

    from aflow.backends.k8s import api as k8s_api_mod
    from aflow.backends.k8s import backend as k8s_backend
    from aflow.backends.k8s import watch as k8s_watch
    from aflow.backends.remote import RemoteContext
    from aflow.stores.factory import open_store

    async def go() -> None:
        store = open_store(*s3_datastore)
        ctx = RemoteContext("Flow", "1", __file__, s3_datastore[0], store, 4)
        backend = k8s_backend.KubernetesBackend(ctx)
        await backend._open()
        try:
            assert backend._api is not None
            core = client.CoreV1Api(backend._api)
            _, first = await k8s_watch.list_all(core.list_namespaced_pod, "default", backend._selector)
            body = {
                "metadata": {"name": "other", "labels": {"aflow.io/run": backend._run_key}},
                "spec": {
                    "template": {
                        "metadata": {"labels": {"aflow.io/run": backend._run_key}},
                        "spec": {
                            "restartPolicy": "Never",
                            "containers": [{"name": "c", "image": "i", "command": ["true"]}],
                        },
                    }
                },
            }
            await client.BatchV1Api(backend._api).create_namespaced_job("default", body)
            await anyio.sleep(0.5)
            await anyio.to_thread.run_sync(k8s.compact)
            seen: list[str] = []
            with pytest.raises(k8s_api_mod.Expired):
                await k8s_watch.stream(
                    core.list_namespaced_pod,
                    "default",
                    backend._selector,
                    first,
                    lambda kind, obj: seen.append(kind),
                )
            assert seen == []
            # What watch_forever does next: list again, from a version the server still has.
            pods = core.list_namespaced_pod
            items, again = await k8s_watch.list_all(pods, "default", backend._selector)
            assert int(again) > int(first) and [p["metadata"]["labels"]["job-name"] for p in items]
        finally:
            await backend._close()
            await store.aclose()

    anyio.run(go)
