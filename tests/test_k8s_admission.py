"""@kubernetes against the rules a real cluster applies before and after it makes a pod, held by
the emulator: Pod Security `restricted`, a missing service account, a LimitRange, a ResourceQuota
(each refusal only a FailedCreate event on the Job), Jobs deleted after ttlSecondsAfterFinished,
and an image pull that backs off for a while or for good."""

from __future__ import annotations

import sys
import time
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("kubernetes_asyncio")

from k8s_support import job_posts, run

from aflow.engine.events import OutputLine, TaskFailed

FLOWS = Path(__file__).resolve().parent / "remote_flows"
sys.path.insert(0, str(FLOWS))
RESTRICTED = {"pod-security.kubernetes.io/enforce": "restricted"}


def failures(events: list[tuple[float, Any]]) -> list[TaskFailed]:
    return [e for _, e in events if isinstance(e, TaskFailed)]


def test_default_pods_pass_pod_security_restricted(k8s: Any) -> None:
    from k8s_foreach import K8sForeachFlow

    k8s.label_namespace("default", RESTRICTED)
    result, events = run(K8sForeachFlow, k8s, params={"width": 3})
    assert result.successful, failures(events)
    pod = job_posts(k8s, "work")[0].body["spec"]["template"]["spec"]
    assert pod["securityContext"]["runAsNonRoot"] is True and pod["securityContext"]["runAsUser"] == 1000
    assert pod["containers"][0]["securityContext"]["allowPrivilegeEscalation"] is False
    assert not k8s.events()  # no pod was refused
    assert job_posts(k8s, "work")[0].body["spec"]["ttlSecondsAfterFinished"] == 3600


def test_pods_refused_by_pod_security_fail_at_once_with_the_reason(
    k8s: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    from k8s_foreach import K8sForeachFlow

    monkeypatch.setenv("AFLOW_KUBERNETES_POD_SECURITY", "none")
    k8s.label_namespace("default", RESTRICTED)
    started = time.monotonic()
    result, events = run(K8sForeachFlow, k8s, timeout=60, params={"width": 3})
    assert not result.successful
    [first, *_] = failures(events)
    assert 'violates PodSecurity "restricted:latest"' in first.message
    assert "allowPrivilegeEscalation != false" in first.message
    assert "AFLOW_KUBERNETES_POD_SECURITY" in first.message  # what to change
    assert time.monotonic() - started < 30
    assert k8s.pods() == [] and k8s.job(job_posts(k8s)[0].body["metadata"]["name"]) is None


def test_a_missing_service_account_is_reported(k8s: Any) -> None:
    from k8s_resources import K8sResourcesFlow

    result, events = run(K8sResourcesFlow, k8s, timeout=60)
    assert not result.successful
    [failed] = failures(events)
    assert 'serviceaccount "trainer" not found' in failed.message
    assert "@kubernetes(service_account=)" in failed.message


def test_a_limit_range_refusal_is_reported(k8s: Any) -> None:
    from k8s_foreach import K8sForeachFlow

    k8s.set_limit_range("default", max={"memory": "128Mi"})
    result, events = run(K8sForeachFlow, k8s, timeout=60, params={"width": 2})
    assert not result.successful
    message = failures(events)[0].message
    assert "maximum memory usage per Container is 128Mi, but limit is 256Mi" in message
    assert "LimitRange" in message


def test_a_full_quota_fails_after_the_create_deadline(k8s: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    from k8s_foreach import K8sForeachFlow

    monkeypatch.setenv("AFLOW_KUBERNETES_CREATE_SECONDS", "3")
    k8s.set_quota("default", {"pods": "0"})
    started = time.monotonic()
    result, events = run(K8sForeachFlow, k8s, timeout=60, params={"width": 2})
    assert not result.successful
    message = failures(events)[0].message
    assert "exceeded quota: compute-quota, requested: pods=1, used: pods=0, limited: pods=0" in message
    assert "for 3 s (AFLOW_KUBERNETES_CREATE_SECONDS)" in message
    assert 3 <= time.monotonic() - started < 40


def test_a_quota_with_some_room_runs_every_child_in_turn(k8s: Any) -> None:
    from k8s_foreach import K8sForeachFlow

    k8s.set_quota("default", {"pods": "2"})
    result, events = run(K8sForeachFlow, k8s, params={"width": 4, "sleep": 1.0})
    assert result.successful, failures(events)
    assert result["join"].task.data.squares == [0, 1, 4, 9]
    assert k8s.peak_running(job_posts(k8s, "work")[0].body["metadata"]["name"]) <= 2
    said = [e.line for _, e in events if isinstance(e, OutputLine) and "exceeded quota" in e.line]
    assert len(said) == 1  # told once, not per refusal


def test_finished_jobs_are_deleted_after_their_ttl(k8s: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    from k8s_foreach import K8sForeachFlow

    monkeypatch.setenv("AFLOW_KUBERNETES_TTL_SECONDS", "1")
    result, events = run(K8sForeachFlow, k8s, params={"width": 3})
    assert result.successful, failures(events)
    [post] = job_posts(k8s, "work")
    assert post.body["spec"]["ttlSecondsAfterFinished"] == 1
    deadline = time.monotonic() + 30
    while (k8s.job(post.body["metadata"]["name"]) or k8s.pods()) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert k8s.job(post.body["metadata"]["name"]) is None and k8s.pods() == []


IMAGE = "registry.example.com/team/aflow-task:1"


def test_a_transient_image_pull_back_off_does_not_fail_the_foreach(
    k8s: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    from k8s_foreach import K8sForeachFlow

    monkeypatch.setenv("AFLOW_KUBERNETES_IMAGE", IMAGE)
    k8s.fail_image_pull(IMAGE, seconds=3.0, pods=1)  # one pod's pull backs off, then works
    result, events = run(K8sForeachFlow, k8s, params={"width": 3})
    assert result.successful, failures(events)
    assert result["join"].task.data.squares == [0, 1, 4]


def test_an_image_that_never_pulls_fails_clearly_after_the_bound(
    k8s: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    from k8s_foreach import K8sForeachFlow

    monkeypatch.setenv("AFLOW_KUBERNETES_IMAGE", IMAGE)
    monkeypatch.setenv("AFLOW_KUBERNETES_IMAGE_PULL_SECONDS", "3")
    k8s.fail_image_pull(IMAGE)  # no such image
    started = time.monotonic()
    result, events = run(K8sForeachFlow, k8s, timeout=60, params={"width": 3})
    assert not result.successful
    message = failures(events)[0].message
    assert "could not pull its image for 3 s (AFLOW_KUBERNETES_IMAGE_PULL_SECONDS)" in message
    assert f"{IMAGE}: not found" in message and "registry" in message
    assert time.monotonic() - started < 40
