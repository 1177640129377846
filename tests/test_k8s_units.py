"""The pure parts of the @kubernetes backend (aflow/backends/k8s/manifests.py, status.py,
settings.py): the Job it builds, how it reads what pods, Jobs and events say, and its settings,
without a server."""

from __future__ import annotations

from typing import Any

import pytest

pytest.importorskip("kubernetes_asyncio")

from fakes import k8s_admission

from aflow.backends.k8s import manifests, status
from aflow.exception import AflowException


def manifest(**overrides: Any) -> dict[str, Any]:
    args: dict[str, Any] = dict(
        name="aflow-work-0123456789-0",
        namespace="default",
        step="work",
        flow_name="Flow",
        run_id="17",
        run_key="0123456789abcdef",
        pathspec=None,
        count=3,
        parallelism=16,
        per_index=True,
        image="python:3.11",
        command=["python3", "-c", "pass"],
        env=manifests.env_entries({"A": "1"}, True),
        amount=manifests.quantities({"cpu": 0.5, "memory": 256, "disk": None, "gpu": None}),
        own={},
        service_account=None,
    )
    args.update(overrides)
    return manifests.job_manifest(**args)


def test_indexed_job_shape() -> None:
    job = manifest(ttl_seconds=60)
    spec = job["spec"]
    assert spec["completionMode"] == "Indexed" and spec["completions"] == 3 and spec["parallelism"] == 3
    assert spec["backoffLimitPerIndex"] == 0 and "backoffLimit" not in spec
    assert spec["ttlSecondsAfterFinished"] == 60
    container = spec["template"]["spec"]["containers"][0]
    assert container["resources"]["limits"] == {"cpu": "500m", "memory": "256Mi"}
    names = [e["name"] for e in container["env"]]
    assert names == ["A", "AFLOW_POD_NAME", "AFLOW_TASK_INDEX"]


def test_single_task_and_old_server_use_backoff_limit_zero() -> None:
    assert manifest(count=1)["spec"]["backoffLimit"] == 0
    assert "completionMode" not in manifest(count=1)["spec"]
    assert manifest(per_index=False)["spec"]["backoffLimit"] == 0


def test_restricted_security_context_passes_pod_security_restricted() -> None:
    pod = manifest(run_as_user=1000)["spec"]["template"]
    assert k8s_admission.pod_security_refusal("restricted", pod) is None
    assert pod["spec"]["securityContext"]["runAsUser"] == 1000
    bare = manifest(restricted=False)["spec"]["template"]
    refusal = k8s_admission.pod_security_refusal("restricted", bare)
    assert refusal and "runAsNonRoot != true" in refusal and "seccompProfile" in refusal
    assert k8s_admission.pod_security_refusal("baseline", bare) is None


def test_labels_are_checked_naming_the_step() -> None:
    with pytest.raises(AflowException, match="step 'work': @kubernetes label team='a b'"):
        manifest(own={"labels": {"team": "a b"}})
    assert manifests.label_value("-My Flow!-") == "My-Flow"
    assert manifests.dns_label("Train_Model", 22) == "train-model"


@pytest.mark.parametrize(
    "message, permanent, hint",
    [
        ('pods "x" is forbidden: exceeded quota: q, requested: pods=1', False, "ResourceQuota"),
        ('pods "x" is forbidden: violates PodSecurity "restricted:latest": ...', True, "Pod Security"),
        ('error looking up service account d/t: serviceaccount "t" not found', True, "service_account"),
        ("maximum memory usage per Container is 1Gi, but limit is 2Gi", True, "LimitRange"),
        ("Internal error occurred: failed calling webhook", False, "webhook"),
        ('admission webhook "x" denied the request: no', True, ""),
    ],
)
def test_create_refusals_are_read(message: str, permanent: bool, hint: str) -> None:
    got_permanent, got_hint = status.create_refusal(message)
    assert got_permanent is permanent and hint in got_hint


def test_status_readings() -> None:
    assert status.indexes("0,2-4") == {0, 2, 3, 4} and status.indexes("") == set()
    oom = {
        "metadata": {"name": "p"},
        "spec": {"containers": [{"name": "aflow", "resources": {"limits": {"memory": "1Gi"}}}]},
        "status": {
            "phase": "Failed",
            "containerStatuses": [
                {"name": "aflow", "state": {"terminated": {"exitCode": 137, "reason": "OOMKilled"}}}
            ],
        },
    }
    exit = status.exit_of(oom)
    assert exit.returncode == 137 and "OOMKilled" in exit.reason and "1Gi" in exit.reason


def test_quota_arithmetic() -> None:
    pod = {
        "spec": {"containers": [{"resources": {"requests": {"cpu": "500m"}, "limits": {"cpu": "1"}}}]}
    }
    assert k8s_admission.quota_refusal("q", {"requests.cpu": "1"}, pod, [pod]) is None
    refusal = k8s_admission.quota_refusal("q", {"requests.cpu": "1"}, pod, [pod, pod])
    wanted = "exceeded quota: q, requested: requests.cpu=0.5, used: requests.cpu=1, "
    assert refusal == wanted + "limited: requests.cpu=1"


def pod(phase: str, **status: Any) -> dict[str, Any]:
    return {"metadata": {"name": "p"}, "status": {"phase": phase, **status}}


def test_how_a_pod_ended_is_said() -> None:
    assert status.exit_of(pod("Succeeded")).returncode == 0
    evicted = status.exit_of(pod("Failed", reason="Evicted", message="node low on memory"))
    assert evicted.returncode == 1 and "evicted pod p: node low on memory" in evicted.reason
    gone = {"metadata": {"name": "p", "deletionTimestamp": "now"}, "status": {"phase": "Pending"}}
    assert status.exit_of(gone).reason == "pod p was deleted before its container ran"
    term = {"name": "aflow", "state": {"terminated": {"exitCode": 3, "reason": "Error"}}}
    exited = status.exit_of(pod("Failed", containerStatuses=[term]))
    assert exited.returncode == 3 and exited.reason == "pod p's container exited with code 3"
    assert status.container_ran(pod("Failed", containerStatuses=[term]))
    assert not status.container_ran(pod("Pending"))


def test_job_conditions_and_server_versions() -> None:
    job = {
        "status": {
            "conditions": [
                {"type": "Suspended", "status": "True"},
                {"type": "Failed", "status": "True", "reason": "FailedIndexes"},
                {"type": "Complete", "status": "False"},
            ]
        }
    }
    assert list(status.job_conditions(job)) == ["Failed"]
    assert status.job_conditions({"status": {}}) == {}

    class Info:
        major, minor = "1", "29+"

    assert status.server_version(Info()) == (1, 29)
    assert status.server_version(object()) == (1, 99)  # unreadable: assumed recent


def test_settings_are_read_once_and_bad_values_named(monkeypatch: pytest.MonkeyPatch) -> None:
    from aflow.backends.k8s.settings import KubernetesSettings

    for name in ("AFLOW_KUBERNETES_HOST", "KUBECONFIG", "KUBERNETES_SERVICE_HOST"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AFLOW_KUBERNETES_NAMESPACE", "team-a")
    monkeypatch.setenv("AFLOW_KUBERNETES_TTL_SECONDS", "none")
    monkeypatch.setenv("AFLOW_KUBERNETES_RUN_AS_USER", "image")
    monkeypatch.setenv("AFLOW_KUBERNETES_IMAGE_PULL_SECONDS", "5")
    settings = KubernetesSettings.from_env()
    assert (settings.namespace, settings.ttl_seconds, settings.run_as_user) == ("team-a", None, None)
    assert settings.pull_seconds == 5 and settings.create_seconds == 120 and settings.restricted
    monkeypatch.setenv("AFLOW_KUBERNETES_NAMESPACE", "changed")
    assert settings.namespace == "team-a"  # frozen: read once
    for name, value in [
        ("AFLOW_KUBERNETES_RUN_AS_USER", "0"),
        ("AFLOW_KUBERNETES_POD_SECURITY", "baseline"),
        ("AFLOW_KUBERNETES_CREATE_SECONDS", "soon"),
    ]:
        with monkeypatch.context() as patch:
            patch.setenv(name, value)
            with pytest.raises(AflowException, match=name):
                KubernetesSettings.from_env()


@pytest.mark.parametrize("datastore", ["s3", "gs", "azure"])
def test_an_image_with_aflows_dependencies_installs_nothing(datastore: str) -> None:
    """The bootstrap pip-installs each requirement whose module it cannot import: every module
    named must be the one the distribution provides (markdown-it-py's is markdown_it), else every
    pod pip-installs it whatever its image holds. This venv has every dependency."""
    import importlib.util

    from aflow.backends.remote import requirements_for

    pairs = [p.split("=", 1) for p in requirements_for(datastore).split(";")]
    assert [req for module, req in pairs if importlib.util.find_spec(module) is None] == []
