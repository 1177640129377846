"""The Kubernetes objects aflow creates, built by pure functions: a batch/v1 Job (plain for one
task, Indexed for a foreach's children) and the values in it (names, labels, quantities), checked
as the API server would check them so that a mistake is reported naming the step."""

from __future__ import annotations

import math
import re
from typing import Any

from aflow.exception import AflowException

INDEX_KEY = "batch.kubernetes.io/job-completion-index"
CONTAINER = "aflow"
# Labels on every Job and pod of a run. RUN_LABEL is a hash of flow and run id, so one selector finds
# exactly this run's objects whatever the names (label values are cut at 63 characters).
RUN_LABEL = "aflow.io/run"
FLOW_LABEL = "aflow.io/flow"
RUN_ID_LABEL = "aflow.io/run-id"
STEP_LABEL = "aflow.io/step"
JOB_LABEL = "aflow.io/job"

# What the Pod Security Standards' `restricted` level asks of a pod and of each container.
RESTRICTED_POD = {"runAsNonRoot": True, "seccompProfile": {"type": "RuntimeDefault"}}
RESTRICTED_CONTAINER = {"allowPrivilegeEscalation": False, "capabilities": {"drop": ["ALL"]}}
# Where a non-root container can write in any image (its root filesystem's "/" is root's).
WRITABLE_DIR = "/tmp"

_LABEL_VALUE = re.compile(r"(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?")
_LABEL_NAME = re.compile(r"([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]")
_DNS_SUBDOMAIN = re.compile(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*")


def label_value(text: str) -> str:
    """`text` as a valid label value: [A-Za-z0-9._-], at most 63, alphanumeric at both ends."""
    value = re.sub(r"[^A-Za-z0-9._-]+", "-", text)[:63]
    return re.sub(r"^[^A-Za-z0-9]+|[^A-Za-z0-9]+$", "", value)


def dns_label(text: str, size: int) -> str:
    """`text` as a lowercase DNS-1123 label fragment of at most `size` characters."""
    return re.sub(r"-+", "-", re.sub(r"[^a-z0-9]", "-", text.lower()))[:size].strip("-") or "x"


def cpu_quantity(cpu: float) -> str:
    return str(int(cpu)) if cpu == int(cpu) else f"{math.ceil(cpu * 1000)}m"


def quantities(asked: dict[str, float | None]) -> dict[str, str]:
    """Requests (= limits) from @kubernetes / @resources: memory and disk are MiB."""
    out = {}
    if asked.get("cpu"):
        out["cpu"] = cpu_quantity(float(asked["cpu"] or 0))
    if asked.get("memory"):
        out["memory"] = f"{math.ceil(float(asked['memory'] or 0))}Mi"
    if asked.get("disk"):
        out["ephemeral-storage"] = f"{math.ceil(float(asked['disk'] or 0))}Mi"
    if asked.get("gpu"):
        out["nvidia.com/gpu"] = str(math.ceil(float(asked["gpu"] or 0)))
    return out


def env_entries(env: dict[str, str], indexed: bool) -> list[dict[str, Any]]:
    """The container's env list: the plain values, then what the pod learns of itself."""
    out: list[dict[str, Any]] = [{"name": k, "value": v} for k, v in sorted(env.items())]
    # The task record names the pod it ran in (the client's Task.job_id).
    out.append({"name": "AFLOW_POD_NAME", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}})
    if indexed:  # the controller sets JOB_COMPLETION_INDEX too; this works on any version
        ref = {"fieldPath": f"metadata.annotations['{INDEX_KEY}']"}
        out.append({"name": "AFLOW_TASK_INDEX", "valueFrom": {"fieldRef": ref}})
    return out


def job_manifest(
    *,
    name: str,
    namespace: str,
    step: str,
    flow_name: str,
    run_id: str,
    run_key: str,
    pathspec: str | None,
    count: int,
    parallelism: int,
    per_index: bool,
    image: str,
    command: list[str],
    env: list[dict[str, Any]],
    amount: dict[str, str],
    own: dict[str, Any],
    service_account: str | None,
    restricted: bool = True,
    run_as_user: int | None = None,
    ttl_seconds: int | None = None,
) -> dict[str, Any]:
    """The Job of a group of `count` tasks of `step` (Indexed when more than one). aflow retries
    by itself, as a new Job with the next attempt number: no pod is ever retried."""
    labels = user_labels(step, own.get("labels"))
    labels.update({
        RUN_LABEL: run_key,
        FLOW_LABEL: label_value(flow_name),
        RUN_ID_LABEL: label_value(run_id),
        STEP_LABEL: label_value(step),
        JOB_LABEL: name,
    })  # fmt: skip
    annotations = {"aflow.io/flow-name": flow_name, "aflow.io/run-id": run_id, "aflow.io/step": step}
    if pathspec is not None:
        annotations["aflow.io/pathspec"] = pathspec
    container = {
        "name": CONTAINER,
        "image": image,
        "command": command,
        "env": env,
        "resources": {"requests": amount, "limits": amount},
    }
    pod: dict[str, Any] = {"restartPolicy": "Never", "containers": [container]}
    if restricted:  # passes Pod Security `restricted`; the user must not be root (uid 0)
        container["securityContext"] = dict(RESTRICTED_CONTAINER)
        pod["securityContext"] = dict(RESTRICTED_POD)
        if run_as_user is not None:
            pod["securityContext"].update(runAsUser=run_as_user, runAsGroup=run_as_user)
    if service_account:
        pod["serviceAccountName"] = service_account
    if own.get("node_selector"):
        pod["nodeSelector"] = {str(k): str(v) for k, v in dict(own["node_selector"]).items()}
    if own.get("tolerations"):
        pod["tolerations"] = tolerations(step, own["tolerations"])
    indexed = count > 1
    spec: dict[str, Any] = {
        "completions": count,
        "parallelism": min(count, parallelism),
        "template": {"metadata": {"labels": labels, "annotations": annotations}, "spec": pod},
    }
    if indexed and per_index:
        # Each index fails alone (its pod OOMKilled, evicted or deleted by a @timeout); the
        # others run on. backoffLimit stays unset (unlimited): 0 would fail the whole Job again.
        spec["backoffLimitPerIndex"] = 0
    else:
        spec["backoffLimit"] = 0
    if indexed:
        spec["completionMode"] = "Indexed"
    if ttl_seconds is not None:  # the Job and its pods are deleted that long after it ends
        spec["ttlSecondsAfterFinished"] = ttl_seconds
    meta = {"name": name, "namespace": namespace, "labels": labels, "annotations": annotations}
    return {"apiVersion": "batch/v1", "kind": "Job", "metadata": meta, "spec": spec}


def check_step(step: str, decorators: dict[str, dict[str, Any]]) -> None:
    """What can be known wrong before the run starts (see router.check_remote)."""
    own = decorators.get("kubernetes", {})
    user_labels(step, own.get("labels"))
    if own.get("tolerations"):
        tolerations(step, own["tolerations"])


def user_labels(step: str, labels: Any) -> dict[str, str]:
    """@kubernetes(labels=...), checked as the API would, naming the step."""
    if not labels:
        return {}
    if not isinstance(labels, dict):
        raise AflowException(f"step '{step}': @kubernetes(labels=) must be a dict of name: value")
    out = {}
    for key, value in labels.items():
        key, value = str(key), str(value)
        prefix, _, name = key.rpartition("/")
        ok_key = (
            len(name) <= 63
            and _LABEL_NAME.fullmatch(name)
            and (not prefix or (len(prefix) <= 253 and _DNS_SUBDOMAIN.fullmatch(prefix)))
        )
        if not ok_key:
            raise AflowException(f"step '{step}': @kubernetes label name {key!r} is not valid")
        if len(value) > 63 or not _LABEL_VALUE.fullmatch(value):
            raise AflowException(
                f"step '{step}': @kubernetes label {key}={value!r}: a label value is at most 63 of "
                "A-Z a-z 0-9 - _ . and starts and ends with a letter or digit"
            )
        out[key] = value
    return out


def tolerations(step: str, given: Any) -> list[dict[str, Any]]:
    items = [given] if isinstance(given, dict) else given
    if not isinstance(items, list) or not all(isinstance(t, dict) for t in items):
        raise AflowException(
            f"step '{step}': @kubernetes(tolerations=) must be a list of dicts such as "
            "{'key': 'gpu', 'operator': 'Exists', 'effect': 'NoSchedule'}"
        )
    return [dict(t) for t in items]
