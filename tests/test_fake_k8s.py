"""The Kubernetes API-server emulator (tests/fakes/k8s_server.py), driven with kubernetes-asyncio the
way a @kubernetes backend would: version, Jobs (plain and Indexed), pod watches by label selector,
pod logs followed, retries up to backoffLimit, deletion, watch expiry and resume, and the hooks."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from pathlib import Path

import pytest

pytest.importorskip("kubernetes_asyncio")

from kubernetes_asyncio import client, watch
from kubernetes_asyncio.client.exceptions import ApiException

NS = "default"
INDEX = "batch.kubernetes.io/job-completion-index"
FAILURE_COUNT = "batch.kubernetes.io/job-index-failure-count"


def job_body(
    name: str,
    code: str,
    *,
    completions: int | None = None,
    parallelism: int | None = None,
    indexed: bool = False,
    backoff_limit: int | None = 0,
    env: list[dict] | None = None,
    labels: dict[str, str] | None = None,
    **more: int,
) -> dict:
    spec: dict = {
        "template": {
            "metadata": {"labels": {"app": "aflow", **(labels or {})}},
            "spec": {
                "restartPolicy": "Never",
                "containers": [
                    {
                        "name": "main",
                        "image": "python:3.11-slim",
                        "command": ["python", "-c"],
                        "args": [code],
                        "env": env or [],
                        "resources": {
                            "requests": {"cpu": "1", "memory": "4096Mi"},
                            "limits": {"cpu": "1", "memory": "4096Mi"},
                        },
                    }
                ],
            },
        },
    }
    if completions is not None:
        spec["completions"] = completions
    if parallelism is not None:
        spec["parallelism"] = parallelism
    if indexed:
        spec["completionMode"] = "Indexed"
    if backoff_limit is not None:
        spec["backoffLimit"] = backoff_limit
    spec.update(more)  # e.g. backoffLimitPerIndex, maxFailedIndexes
    return {"apiVersion": "batch/v1", "kind": "Job", "metadata": {"name": name}, "spec": spec}


def run(server, fn: Callable, timeout: float = 20) -> None:
    """Run `fn(api_client)` in a fresh event loop, as a backend would, with a time limit."""

    async def main() -> None:
        async with client.ApiClient(server.client_configuration()) as api:
            async with asyncio.timeout(timeout):
                await fn(api)

    asyncio.run(main())


async def watch_until(func: Callable, done: Callable[[list[dict]], bool], *args, **kwargs) -> list[dict]:
    """Events of one watch (Watch.stream, as a backend uses it) until done(events)."""
    events: list[dict] = []
    w = watch.Watch()
    try:
        async for ev in w.stream(func, *args, **kwargs):
            events.append(ev)
            if done(events):
                break
    finally:
        await w.close()
    return events


def phase_of(ev: dict) -> str:
    return ev["object"].status.phase


def test_version(k8s_api) -> None:
    async def go(api) -> None:
        info = await client.VersionApi(api).get_code()
        assert info.major == "1" and info.git_version.startswith("v1.")
        assert info.platform and info.go_version and info.build_date

    run(k8s_api, go)
    assert k8s_api.calls("GET", r"^/version/$")


def test_job_runs_pod_phases_logs_and_status(k8s_api) -> None:
    async def go(api) -> None:
        batch, core = client.BatchV1Api(api), client.CoreV1Api(api)
        created = await batch.create_namespaced_job(NS, job_body("hello", "print('hi')"))
        assert created.metadata.uid and created.metadata.resource_version
        assert created.spec.template.metadata.labels["job-name"] == "hello"

        # Watch from the creation's resourceVersion: every change after it, none missed.
        events = await watch_until(
            core.list_namespaced_pod,
            lambda evs: phase_of(evs[-1]) in ("Succeeded", "Failed"),
            NS,
            label_selector="job-name=hello",
            resource_version=created.metadata.resource_version,
        )
        phases = [phase_of(e) for e in events]
        assert [p for i, p in enumerate(phases) if i == 0 or phases[i - 1] != p] == [
            "Pending",
            "Running",
            "Succeeded",
        ]
        rvs = [int(e["object"].metadata.resource_version) for e in events]
        assert rvs == sorted(rvs) and len(set(rvs)) == len(rvs)
        pod = events[-1]["object"]
        assert pod.metadata.name.startswith("hello-") and len(pod.metadata.name) == len("hello-") + 5
        assert pod.metadata.labels["controller-uid"] == created.metadata.uid
        assert pod.metadata.labels["app"] == "aflow"
        assert pod.metadata.owner_references[0].kind == "Job"
        term = pod.status.container_statuses[0].state.terminated
        assert (term.exit_code, term.reason) == (0, "Completed")
        assert pod.status.container_statuses[0].image == "python:3.11-slim"

        assert await core.read_namespaced_pod_log(pod.metadata.name, NS) == "hi\n"
        one = await core.read_namespaced_pod(pod.metadata.name, NS)
        assert one.status.phase == "Succeeded"

        # The Job's status reaches Complete soon after the pod succeeds.
        for _ in range(100):
            job = await batch.read_namespaced_job("hello", NS)
            if job.status.completion_time:
                break
            await asyncio.sleep(0.02)
        assert job.status.succeeded == 1 and job.status.failed is None and job.status.active is None
        assert job.status.start_time and job.status.completion_time
        assert "Complete" in [c.type for c in job.status.conditions]
        listed = await batch.list_namespaced_job(NS, label_selector="app=aflow")
        assert [j.metadata.name for j in listed.items] == ["hello"]
        assert (await batch.list_namespaced_job(NS, label_selector="app=other")).items == []

    run(k8s_api, go)
    post = k8s_api.calls("POST", r"/jobs$")[0]
    container = post.body["spec"]["template"]["spec"]["containers"][0]
    assert container["resources"]["limits"] == {"cpu": "1", "memory": "4096Mi"}
    assert len(k8s_api.calls("GET", r"/pods$", watch=True)) == 1
    assert k8s_api.calls("GET", r"/pods$", watch=True)[0].query["watch"] == "True"


def test_follow_pod_log_streams_lines_as_written(k8s_api) -> None:
    # 2.4 s of lines: a follow that connects late on a loaded machine still sees them stream.
    code = "import time\nfor i in range(6):\n    print('line', i, flush=True)\n    time.sleep(0.4)"

    async def go(api) -> None:
        batch, core = client.BatchV1Api(api), client.CoreV1Api(api)
        await batch.create_namespaced_job(NS, job_body("talk", code))
        events = await watch_until(
            core.list_namespaced_pod,
            lambda evs: phase_of(evs[-1]) == "Running",
            NS,
            label_selector="job-name=talk",
        )
        name = events[-1]["object"].metadata.name
        arrivals: list[tuple[float, str]] = []
        w = watch.Watch()
        async for line in w.stream(core.read_namespaced_pod_log, name, NS):
            arrivals.append((time.monotonic(), line))
        await w.close()
        assert [line for _, line in arrivals] == [f"line {i}\n" for i in range(6)]
        assert arrivals[-1][0] - arrivals[0][0] > 0.6  # streamed, not delivered at the end
        pod = await core.read_namespaced_pod(name, NS)
        assert pod.status.phase == "Succeeded"

        # A client closing the stream mid-way does not disturb the server.
        await batch.create_namespaced_job(
            NS, job_body("long", "import time; print('a', flush=True); time.sleep(30)")
        )
        events = await watch_until(
            core.list_namespaced_pod,
            lambda evs: phase_of(evs[-1]) == "Running",
            NS,
            label_selector="job-name=long",
        )
        long_name = events[-1]["object"].metadata.name
        resp = await core.read_namespaced_pod_log(long_name, NS, follow=True, _preload_content=False)
        assert await resp.content.readline() == b"a\n"
        resp.close()
        stamped = await core.read_namespaced_pod_log(long_name, NS, timestamps=True)
        assert stamped.endswith("Z a\n")
        await batch.delete_namespaced_job("long", NS, propagation_policy="Background")

    run(k8s_api, go)


def test_indexed_job_runs_each_index_with_bounded_parallelism(k8s_api) -> None:
    code = (
        "import os, time\n"
        "print('index', os.environ['JOB_COMPLETION_INDEX'], os.environ['FROM_ANNOTATION'], flush=True)\n"
        "time.sleep(0.3)"
    )
    env = [
        {
            "name": "FROM_ANNOTATION",
            "valueFrom": {
                "fieldRef": {
                    "fieldPath": "metadata.annotations['batch.kubernetes.io/job-completion-index']"
                }
            },
        }
    ]

    async def go(api) -> None:
        batch, core = client.BatchV1Api(api), client.CoreV1Api(api)
        body = job_body("fan", code, completions=5, parallelism=2, indexed=True, env=env)
        await batch.create_namespaced_job(NS, body)

        def job_done(evs: list[dict]) -> bool:
            conds = evs[-1]["object"].status.conditions or []
            return any(c.type in ("Complete", "Failed") for c in conds)

        job_events = await watch_until(
            batch.list_namespaced_job, job_done, NS, field_selector="metadata.name=fan"
        )
        job = job_events[-1]["object"]
        assert [c.type for c in job.status.conditions][-1] == "Complete"
        assert job.status.succeeded == 5 and job.status.completed_indexes == "0-4"
        assert job.status.failed_indexes is None  # only tracked with backoffLimitPerIndex
        assert max(e["object"].status.active or 0 for e in job_events) <= 2

        # Replay every pod event from the start: never more than 2 Running at once.
        pod_events = await watch_until(
            core.list_namespaced_pod,
            lambda evs: sum(phase_of(e) == "Succeeded" for e in evs) == 5,
            NS,
            label_selector="job-name=fan",
            resource_version="1",
        )
        running: set[str] = set()
        peak = 0
        for e in pod_events:
            name = e["object"].metadata.name
            if phase_of(e) == "Running":
                running.add(name)
            else:
                running.discard(name)
            peak = max(peak, len(running))
        assert peak == 2

        pods = (await core.list_namespaced_pod(NS, label_selector="job-name=fan")).items
        assert len(pods) == 5
        for pod in pods:
            index = pod.metadata.annotations["batch.kubernetes.io/job-completion-index"]
            assert pod.metadata.name.startswith(f"fan-{index}-")
            log = await core.read_namespaced_pod_log(pod.metadata.name, NS)
            assert log == f"index {index} {index}\n"
        assert sorted(
            p.metadata.labels["batch.kubernetes.io/job-completion-index"] for p in pods
        ) == list("01234")

    run(k8s_api, go)
    assert k8s_api.peak_running("fan") == 2


def test_failing_command_retried_up_to_backoff_limit(k8s_api) -> None:
    async def go(api) -> None:
        batch, core = client.BatchV1Api(api), client.CoreV1Api(api)
        body = job_body("flaky", "import sys; print('boom'); sys.exit(3)", backoff_limit=1)
        await batch.create_namespaced_job(NS, body)
        events = await watch_until(
            batch.list_namespaced_job,
            lambda evs: "Failed" in [c.type for c in evs[-1]["object"].status.conditions or []],
            NS,
            field_selector="metadata.name=flaky",
        )
        job = events[-1]["object"]
        failed = next(c for c in job.status.conditions if c.type == "Failed")
        assert failed.reason == "BackoffLimitExceeded"
        assert job.status.failed == 2 and job.status.succeeded is None
        pods = (await core.list_namespaced_pod(NS, label_selector="job-name=flaky")).items
        assert len(pods) == 2 and {p.status.phase for p in pods} == {"Failed"}
        for pod in pods:
            term = pod.status.container_statuses[0].state.terminated
            assert (term.exit_code, term.reason) == (3, "Error")
            assert await core.read_namespaced_pod_log(pod.metadata.name, NS) == "boom\n"

    run(k8s_api, go)


def job_finished(evs: list[dict]) -> bool:
    conds = evs[-1]["object"].status.conditions or []
    return any(c.type in ("Complete", "Failed") and c.status == "True" for c in conds)


def test_backoff_limit_per_index_fails_an_index_alone(k8s_api) -> None:
    """backoffLimitPerIndex: index 1 always fails, is retried once (its own limit, 1) and then
    failed alone; the other indexes run to success; once all are done the Job fails, reason
    FailedIndexes, with failedIndexes / completedIndexes as intervals."""
    code = (
        "import os, sys, time\n"
        "i = int(os.environ['JOB_COMPLETION_INDEX'])\n"
        "time.sleep(3.0 if i != 1 else 0)\n"  # long enough for index 1 to fail twice first, loaded
        "sys.exit(3 if i == 1 else 0)"
    )

    async def go(api) -> None:
        batch, core = client.BatchV1Api(api), client.CoreV1Api(api)
        body = job_body(
            "perindex",
            code,
            completions=4,
            parallelism=2,
            indexed=True,
            backoff_limit=None,
            backoffLimitPerIndex=1,
        )
        created = await batch.create_namespaced_job(NS, body)
        assert created.spec.backoff_limit == 2**31 - 1  # no global limit when unset
        events = await watch_until(
            batch.list_namespaced_job, job_finished, NS, field_selector="metadata.name=perindex"
        )
        job = events[-1]["object"]
        assert [(c.type, c.reason) for c in job.status.conditions] == [
            ("FailureTarget", "FailedIndexes"),
            ("Failed", "FailedIndexes"),
        ]
        assert job.status.conditions[-1].message == "Job has failed indexes"
        assert job.status.failed_indexes == "1" and job.status.completed_indexes == "0,2-3"
        assert (job.status.failed, job.status.succeeded) == (2, 3)
        assert job.status.active is None
        # Index 1 failed before the others finished, and they ran on.
        first_failed = next(i for i, e in enumerate(events) if e["object"].status.failed_indexes)
        assert (events[first_failed]["object"].status.succeeded or 0) < 3
        assert events[0]["object"].status.failed_indexes in ("", None)
        pods = (await core.list_namespaced_pod(NS, label_selector="job-name=perindex")).items
        counts = sorted(
            (p.metadata.annotations[INDEX], p.metadata.annotations[FAILURE_COUNT], p.status.phase)
            for p in pods
        )
        assert counts == [
            ("0", "0", "Succeeded"),
            ("1", "0", "Failed"),
            ("1", "1", "Failed"),
            ("2", "0", "Succeeded"),
            ("3", "0", "Succeeded"),
        ]

    run(k8s_api, go)


def test_max_failed_indexes_stops_the_job_early(k8s_api) -> None:
    """More failed indexes than maxFailedIndexes: the Job fails at once (reason
    MaxFailedIndexesExceeded), its running pods are deleted and no index left is started."""
    code = (
        "import os, sys, time\n"
        "i = int(os.environ['JOB_COMPLETION_INDEX'])\n"
        "sys.exit(1) if i < 2 else time.sleep(30)"
    )

    async def go(api) -> None:
        batch, core = client.BatchV1Api(api), client.CoreV1Api(api)
        body = job_body(
            "capped",
            code,
            completions=6,
            parallelism=3,
            indexed=True,
            backoff_limit=None,
            backoffLimitPerIndex=0,
            maxFailedIndexes=1,
        )
        await batch.create_namespaced_job(NS, body)
        events = await watch_until(
            batch.list_namespaced_job, job_finished, NS, field_selector="metadata.name=capped"
        )
        job = events[-1]["object"]
        failed = job.status.conditions[-1]
        assert (failed.type, failed.reason) == ("Failed", "MaxFailedIndexesExceeded")
        assert failed.message == "Job has exceeded the specified maximal number of failed indexes"
        assert job.status.failed_indexes == "0-1" and job.status.completed_indexes is None
        assert job.status.active is None
        # The failed pods stay; the running ones (index 2 at least) were deleted, counted failed.
        assert job.status.failed >= 3
        await asyncio.sleep(0.2)
        pods = (await core.list_namespaced_pod(NS, label_selector="job-name=capped")).items
        assert sorted(p.metadata.annotations[INDEX] for p in pods) == ["0", "1"]
        assert all(p.status.phase == "Failed" for p in pods)

    run(k8s_api, go, timeout=30)
    assert k8s_api.alive_pids() == []


def test_backoff_limit_per_index_validation(k8s_api) -> None:
    async def go(api) -> None:
        batch = client.BatchV1Api(api)
        cases = [
            (
                job_body("a", "pass", backoffLimitPerIndex=0),
                "spec.backoffLimitPerIndex: Invalid value: 0: requires indexed completion mode",
            ),
            (
                job_body("b", "pass", completions=2, indexed=True, maxFailedIndexes=1),
                "spec.backoffLimitPerIndex: Required value: when maxFailedIndexes is specified",
            ),
            (
                job_body(
                    "c",
                    "pass",
                    completions=2,
                    indexed=True,
                    backoffLimitPerIndex=0,
                    maxFailedIndexes=3,
                ),
                "spec.maxFailedIndexes: Invalid value: 3: must be less than or equal to completions",
            ),
            (
                job_body("d", "pass", completions=2, indexed=True, backoffLimitPerIndex=-1),
                "spec.backoffLimitPerIndex: Invalid value: -1: must be greater than or equal to 0",
            ),
        ]
        for body, message in cases:
            with pytest.raises(ApiException) as err:
                await batch.create_namespaced_job(NS, body)
            assert err.value.status == 422
            assert message in err.value.body
        # Both limits set: backoffLimit is kept and still counts every failed pod.
        body = job_body(
            "e",
            "import sys; sys.exit(1)",
            completions=3,
            parallelism=1,
            indexed=True,
            backoff_limit=0,
            backoffLimitPerIndex=2,
        )
        await batch.create_namespaced_job(NS, body)
        events = await watch_until(
            batch.list_namespaced_job, job_finished, NS, field_selector="metadata.name=e"
        )
        job = events[-1]["object"]
        assert job.spec.backoff_limit == 0
        assert job.status.conditions[-1].reason == "BackoffLimitExceeded"
        assert job.status.failed == 1 and job.status.failed_indexes == ""

    run(k8s_api, go)


def test_delete_running_job_kills_its_processes(k8s_api, tmp_path: Path) -> None:
    child_pid = tmp_path / "child.pid"
    code = (
        "import subprocess, sys, time\n"
        f"p = subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(60)'])\n"
        f"open({str(child_pid)!r}, 'w').write(str(p.pid))\n"
        "print('started', flush=True)\n"
        "time.sleep(60)"
    )

    async def go(api) -> None:
        batch, core = client.BatchV1Api(api), client.CoreV1Api(api)
        await batch.create_namespaced_job(NS, job_body("sleepy", code))
        events = await watch_until(
            core.list_namespaced_pod,
            lambda evs: phase_of(evs[-1]) == "Running",
            NS,
            label_selector="job-name=sleepy",
        )
        name = events[-1]["object"].metadata.name
        rv = events[-1]["object"].metadata.resource_version
        for _ in range(200):
            if child_pid.exists() and child_pid.read_text():
                break
            await asyncio.sleep(0.02)
        assert k8s_api.alive_pids()
        await batch.delete_namespaced_job("sleepy", NS, propagation_policy="Background")
        with pytest.raises(ApiException) as err:
            await batch.read_namespaced_job("sleepy", NS)
        assert err.value.status == 404
        after = await watch_until(
            core.list_namespaced_pod,
            lambda evs: evs[-1]["type"] == "DELETED",
            NS,
            label_selector="job-name=sleepy",
            resource_version=rv,
        )
        assert after[0]["object"].metadata.deletion_timestamp is not None
        assert after[-1]["object"].metadata.name == name
        assert (await core.list_namespaced_pod(NS, label_selector="job-name=sleepy")).items == []

    run(k8s_api, go)
    assert k8s_api.alive_pids() == []
    assert not _alive(int(child_pid.read_text()))  # the whole process group went


def _alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except FileNotFoundError:
        return False


def test_delete_without_policy_orphans_pods_like_the_real_api(k8s_api) -> None:
    async def go(api) -> None:
        batch, core = client.BatchV1Api(api), client.CoreV1Api(api)
        await batch.create_namespaced_job(NS, job_body("orphan", "import time; time.sleep(30)"))
        events = await watch_until(
            core.list_namespaced_pod,
            lambda evs: phase_of(evs[-1]) == "Running",
            NS,
            label_selector="job-name=orphan",
        )
        name = events[-1]["object"].metadata.name
        await batch.delete_namespaced_job("orphan", NS)
        pod = await core.read_namespaced_pod(name, NS)
        assert pod.status.phase == "Running" and not pod.metadata.owner_references
        await core.delete_namespaced_pod(name, NS, grace_period_seconds=0)
        gone = await watch_until(
            core.list_namespaced_pod,
            lambda evs: evs[-1]["type"] == "DELETED",
            NS,
            label_selector="job-name=orphan",
            resource_version=pod.metadata.resource_version,
        )
        assert gone[-2]["object"].status.container_statuses[0].state.terminated.exit_code == 137

    run(k8s_api, go)
    assert k8s_api.alive_pids() == []


def test_watch_expiry_resumes_from_last_resource_version(k8s_api) -> None:
    k8s_api.watch_timeout = 0.4
    code = "import time\nfor i in range(3):\n    time.sleep(0.4)\n    print(i, flush=True)"

    async def go(api) -> None:
        batch, core = client.BatchV1Api(api), client.CoreV1Api(api)
        listed = await core.list_namespaced_pod(NS, label_selector="job-name=slow")
        await batch.create_namespaced_job(NS, job_body("slow", code))

        # A backend's loop: watch from the list's resourceVersion; when the server ends the watch,
        # watch again from the last resourceVersion seen. (With timeout_seconds the client's stream
        # ends with the server's; without it the client reconnects by itself, see below.)
        rv = listed.metadata.resource_version
        seen: list[tuple[str, str]] = []
        streams = 0
        while not seen or seen[-1][1] != "Succeeded":
            streams += 1
            w = watch.Watch()
            async for ev in w.stream(
                core.list_namespaced_pod,
                NS,
                label_selector="job-name=slow",
                resource_version=rv,
                timeout_seconds=60,
            ):
                seen.append((ev["type"], phase_of(ev)))
                rv = ev["object"].metadata.resource_version
            await w.close()
        assert streams >= 2
        assert seen[0] == ("ADDED", "Pending")
        assert [p for _, p in seen].count("Succeeded") == 1  # nothing replayed twice

        # The same through the client's own reconnection (no timeout_seconds: watch forever).
        k8s_api.watch_timeout = 0.3
        before = len(k8s_api.calls("GET", r"/jobs$", watch=True))
        await batch.create_namespaced_job(NS, job_body("slow2", code))
        events = await watch_until(
            batch.list_namespaced_job,
            lambda evs: bool(evs[-1]["object"].status.completion_time),
            NS,
            field_selector="metadata.name=slow2",
        )
        watches = k8s_api.calls("GET", r"/jobs$", watch=True)[before:]
        assert len(watches) >= 2
        assert "resourceVersion" not in watches[0].query
        assert all(w.query.get("resourceVersion") for w in watches[1:])
        assert events[-1]["object"].status.succeeded == 1

        # After compaction an old resourceVersion is Expired (410): a backend re-lists.
        old = events[0]["object"].metadata.resource_version
        k8s_api.compact()
        with pytest.raises(ApiException) as err:
            await watch_until(
                batch.list_namespaced_job, lambda evs: True, NS, resource_version=old, timeout_seconds=5
            )
        assert err.value.status == 410
        relisted = await batch.list_namespaced_job(NS)
        assert {j.metadata.name for j in relisted.items} == {"slow", "slow2"}

    run(k8s_api, go)


def test_hooks_evict_oom_and_hold_pending(k8s_api) -> None:
    async def go(api) -> None:
        batch, core = client.BatchV1Api(api), client.CoreV1Api(api)

        # Evicted first pod, retried as a new pod that succeeds.
        k8s_api.evict_next_pod("ev", after=0.1)
        await batch.create_namespaced_job(NS, job_body("ev", "print('ok')", backoff_limit=1))
        events = await watch_until(
            batch.list_namespaced_job,
            lambda evs: bool(evs[-1]["object"].status.completion_time),
            NS,
            field_selector="metadata.name=ev",
        )
        assert events[-1]["object"].status.failed == 1 and events[-1]["object"].status.succeeded == 1
        pods = (await core.list_namespaced_pod(NS, label_selector="job-name=ev")).items
        evicted = [p for p in pods if p.status.phase == "Failed"]
        assert len(pods) == 2 and len(evicted) == 1
        assert evicted[0].status.reason == "Evicted"
        assert "DisruptionTarget" in [c.type for c in evicted[0].status.conditions]

        # OOM-killed.
        k8s_api.oom_next_pod("oom")
        await batch.create_namespaced_job(NS, job_body("oom", "import time; time.sleep(5)"))
        events = await watch_until(
            core.list_namespaced_pod,
            lambda evs: phase_of(evs[-1]) == "Failed",
            NS,
            label_selector="job-name=oom",
        )
        term = events[-1]["object"].status.container_statuses[0].state.terminated
        assert (term.exit_code, term.reason) == (137, "OOMKilled")

        # Held in Pending: Unschedulable, no logs yet; released, it runs.
        k8s_api.hold_pending("held")
        await batch.create_namespaced_job(NS, job_body("held", "print('finally')"))
        events = await watch_until(
            core.list_namespaced_pod,
            lambda evs: bool(evs[-1]["object"].status.conditions),
            NS,
            label_selector="job-name=held",
        )
        pod = events[-1]["object"]
        assert pod.status.phase == "Pending" and pod.status.conditions[0].reason == "Unschedulable"
        with pytest.raises(ApiException) as err:
            await core.read_namespaced_pod_log(pod.metadata.name, NS)
        assert err.value.status == 400 and "waiting to start" in err.value.body
        await asyncio.sleep(0.3)
        assert (await core.read_namespaced_pod(pod.metadata.name, NS)).status.phase == "Pending"
        k8s_api.release_pending("held")
        events = await watch_until(
            core.list_namespaced_pod,
            lambda evs: phase_of(evs[-1]) == "Succeeded",
            NS,
            label_selector="job-name=held",
        )
        assert await core.read_namespaced_pod_log(pod.metadata.name, NS) == "finally\n"

    run(k8s_api, go)


def test_api_validation_and_errors(k8s_api) -> None:
    async def go(api) -> None:
        batch, core = client.BatchV1Api(api), client.CoreV1Api(api)
        for bad in (
            job_body("Bad_Name", "pass"),
            job_body("x" * 64, "pass"),
            job_body("labels", "pass", labels={"flow": "has spaces"}),
        ):
            with pytest.raises(ApiException) as err:
                await batch.create_namespaced_job(NS, bad)
            assert err.value.status == 422
        body = job_body("always", "pass")
        body["spec"]["template"]["spec"]["restartPolicy"] = "Always"
        with pytest.raises(ApiException) as err:
            await batch.create_namespaced_job(NS, body)
        assert err.value.status == 422
        await batch.create_namespaced_job(NS, job_body("twice", "pass"))
        with pytest.raises(ApiException) as err:
            await batch.create_namespaced_job(NS, job_body("twice", "pass"))
        assert err.value.status == 409
        with pytest.raises(ApiException) as err:
            await core.read_namespaced_pod("nope", NS)
        assert err.value.status == 404

        # A command that cannot start: StartError, Failed.
        body = job_body("nocmd", "pass")
        body["spec"]["template"]["spec"]["containers"][0]["command"] = ["/no/such/binary"]
        await batch.create_namespaced_job(NS, body)
        events = await watch_until(
            core.list_namespaced_pod,
            lambda evs: phase_of(evs[-1]) == "Failed",
            NS,
            label_selector="job-name=nocmd",
        )
        assert events[-1]["object"].status.container_statuses[0].state.terminated.reason == "StartError"

        # Delete a collection by label, as a cancel would.
        await batch.create_namespaced_job(
            NS, job_body("c1", "import time; time.sleep(30)", labels={"run": "r7"})
        )
        await batch.create_namespaced_job(
            NS, job_body("c2", "import time; time.sleep(30)", labels={"run": "r7"})
        )
        await batch.delete_collection_namespaced_job(
            NS, label_selector="run=r7", propagation_policy="Foreground"
        )
        for _ in range(200):
            left = (await core.list_namespaced_pod(NS, label_selector="run=r7")).items
            if not left and not (await batch.list_namespaced_job(NS, label_selector="run=r7")).items:
                break
            await asyncio.sleep(0.05)
        assert not left and not k8s_api.alive_pids()

        # Paged list.
        page = await core.list_namespaced_pod(NS, limit=1)
        assert len(page.items) == 1 and page.metadata._continue
        rest = await core.list_namespaced_pod(NS, limit=10, _continue=page.metadata._continue)
        assert page.items[0].metadata.name not in {p.metadata.name for p in rest.items}

    run(k8s_api, go)


def test_env_and_var_expansion(k8s_api) -> None:
    k8s_api.pod_env["FROM_CLUSTER"] = "cluster"
    env = [
        {"name": "A", "value": "x"},
        {"name": "B", "value": "$(A)-y"},
        {"name": "POD", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}},
        {"name": "MEM", "valueFrom": {"resourceFieldRef": {"resource": "limits.memory"}}},
    ]
    code = (
        "import os; e = os.environ\n"
        "print(e['B'], e['POD'] == e['HOSTNAME'], e['MEM'], e['FROM_CLUSTER'], 'HOSTTEST' in e)"
    )

    async def go(api) -> None:
        batch, core = client.BatchV1Api(api), client.CoreV1Api(api)
        await batch.create_namespaced_job(NS, job_body("envy", code, env=env))
        events = await watch_until(
            core.list_namespaced_pod,
            lambda evs: phase_of(evs[-1]) in ("Succeeded", "Failed"),
            NS,
            label_selector="job-name=envy",
        )
        log = await core.read_namespaced_pod_log(events[-1]["object"].metadata.name, NS)
        assert log == "x-y True 4096Mi cluster False\n"

    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("HOSTTEST", "1")  # the test process's environment does not leak into pods
        run(k8s_api, go)


def test_strict_schema_validation_and_documented_limits(k8s_api) -> None:
    """Every Job is checked against the OpenAPI schema with strict field validation (unknown
    fields, wrong types: 400) and against the limits the schema cannot say (422)."""

    async def go(api) -> None:
        batch = client.BatchV1Api(api)
        typo = job_body("typo", "pass")
        typo["spec"]["template"]["spec"]["containers"][0]["comand"] = ["python"]
        wrong_type = job_body("wrong-type", "pass")
        wrong_type["spec"]["parallelism"] = "4"
        for body, words in ((typo, "'comand' was unexpected"), (wrong_type, "'4' is not of type")):
            with pytest.raises(ApiException) as err:
                await batch.create_namespaced_job(NS, body)
            assert err.value.status == 400
            assert "strict decoding error" in err.value.body and words in err.value.body
        bad_env = job_body("bad-env", "pass", env=[{"name": "1ABC", "value": "x"}])
        too_wide = job_body("too-wide", "pass", completions=100_001, indexed=True)
        too_many_notes = job_body("notes", "pass")
        too_many_notes["metadata"]["annotations"] = {"a": "x" * (256 * 1024)}
        for body in (bad_env, too_wide, too_many_notes):
            with pytest.raises(ApiException) as err:
                await batch.create_namespaced_job(NS, body)
            assert err.value.status == 422, body["metadata"]["name"]
        await batch.create_namespaced_job(NS, job_body("fine", "pass"))

    run(k8s_api, go)


def test_refused_pods_leave_only_failed_create_events(k8s_api) -> None:
    """A Job whose pods admission refuses gets no pod and no condition: only FailedCreate events
    (counted up as the controller tries again), readable by a field-selected watch."""
    k8s_api.label_namespace(NS, {"pod-security.kubernetes.io/enforce": "restricted"})
    k8s_api.create_retry_seconds = 0.2

    async def go(api) -> None:
        batch, core = client.BatchV1Api(api), client.CoreV1Api(api)
        await batch.create_namespaced_job(NS, job_body("refused", "pass"))
        events = await watch_until(
            core.list_namespaced_event,
            lambda evs: evs[-1]["object"].count >= 3,
            NS,
            field_selector="involvedObject.kind=Job,reason=FailedCreate",
        )
        last = events[-1]["object"]
        assert last.involved_object.name == "refused" and last.type == "Warning"
        assert 'violates PodSecurity "restricted:latest"' in last.message
        assert (await core.list_namespaced_pod(NS)).items == []
        job = await batch.read_namespaced_job("refused", NS)
        assert not job.status.conditions

    run(k8s_api, go)


def test_bearer_tokens_expire(k8s_api) -> None:
    k8s_api.require_tokens()
    token = k8s_api.issue_token(0.5)

    async def go(api) -> None:
        api.configuration.api_key["BearerToken"] = f"Bearer {token}"
        assert await client.VersionApi(api).get_code()
        await asyncio.sleep(0.6)
        with pytest.raises(ApiException) as err:
            await client.VersionApi(api).get_code()
        assert err.value.status == 401

    run(k8s_api, go)
