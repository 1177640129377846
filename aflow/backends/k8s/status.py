"""What Kubernetes objects say, in aflow's terms: pure functions over the JSON of Jobs and pods
(no API calls), so each rule is unit-tested on its own."""

from __future__ import annotations

import re
from typing import Any

from aflow.backends.k8s.manifests import CONTAINER
from aflow.engine.wire import TaskExit

# Container states in which a pod will never run: waiting any longer only hides the error.
# (ErrImagePull / ImagePullBackOff are often transient: the backend waits for them, boundedly.)
FATAL_WAITING = {"InvalidImageName", "ErrImageNeverPull", "CreateContainerConfigError"}


def server_version(info: Any) -> tuple[int, int]:
    """(major, minor) of a VersionInfo; minors such as "29+" (EKS, GKE) count as 29. Unreadable:
    assumed recent."""
    try:
        return int(re.sub(r"\D", "", info.major)), int(re.sub(r"\D", "", info.minor))
    except (AttributeError, TypeError, ValueError):
        return (1, 99)


def indexes(text: str | None) -> set[int]:
    """A Job status' completedIndexes / failedIndexes ("1,3-5,7") as a set."""
    out: set[int] = set()
    for part in (text or "").split(","):
        first, _, last = part.strip().partition("-")
        if first.isdigit():
            out.update(range(int(first), int(last or first) + 1))
    return out


def job_conditions(job: dict[str, Any]) -> dict[str, dict[str, Any]]:
    conds = (job.get("status") or {}).get("conditions") or []
    return {
        c["type"]: c
        for c in conds
        if c.get("status") == "True" and c.get("type") in ("Complete", "Failed")
    }


def terminated(obj: dict[str, Any]) -> dict[str, Any] | None:
    for cs in (obj.get("status") or {}).get("containerStatuses") or []:
        if cs.get("name") == CONTAINER:
            return (cs.get("state") or {}).get("terminated")
    return None


def container_ran(obj: dict[str, Any]) -> bool:
    for cs in (obj.get("status") or {}).get("containerStatuses") or []:
        state = cs.get("state") or {}
        if "running" in state or "terminated" in state:
            return True
    return False


def exit_of(obj: dict[str, Any]) -> TaskExit:
    """How a pod that is gone or done ended, in words."""
    status = obj.get("status") or {}
    name = obj["metadata"]["name"]
    if status.get("phase") == "Succeeded":
        return TaskExit(0)
    term = terminated(obj)
    code = (term or {}).get("exitCode")
    word = (term or {}).get("reason")
    detail = (term or {}).get("message")
    if status.get("reason") == "Evicted":
        why = f"Kubernetes evicted pod {name}: {status.get('message') or 'no reason given'}"
    elif word == "OOMKilled":
        limit = memory_limit(obj)
        why = (
            f"pod {name} was OOMKilled: the step used more memory than its limit ({limit}); "
            "ask for more with @kubernetes(memory=...) or @resources(memory=...)"
        )
    elif term is not None:
        why = f"pod {name}'s container exited with code {code}"
        if word not in (None, "Error", "Completed") or detail:
            why += f" ({': '.join(str(x) for x in (word, detail) if x)})"
        if obj["metadata"].get("deletionTimestamp"):
            why += " after the pod was deleted"
    elif status.get("phase") != "Failed" or obj["metadata"].get("deletionTimestamp"):
        when = "while its container ran" if container_ran(obj) else "before its container ran"
        why = f"pod {name} was deleted {when}"
    else:
        said = ": ".join(str(x) for x in (status.get("reason"), status.get("message")) if x)
        why = f"pod {name} failed before its container ran: {said or 'no reason given'}"
    return TaskExit(code or (137 if word == "OOMKilled" else 1), why)


def memory_limit(obj: dict[str, Any]) -> str:
    for c in (obj.get("spec") or {}).get("containers") or []:
        if c.get("name") == CONTAINER:
            return str(((c.get("resources") or {}).get("limits") or {}).get("memory", "none set"))
    return "none set"


def create_refusal(message: str) -> tuple[bool, str]:
    """A FailedCreate event's message (the API server refused a Job's pod): (whether waiting cannot
    help, what to change)."""
    if "exceeded quota" in message:
        return False, (
            "the namespace's ResourceQuota has no room for another pod: wait for other pods to end, "
            "ask for less with @kubernetes(cpu=, memory=) / @resources, or raise the quota"
        )
    if any(word in message for word in ("Internal error", "deadline exceeded", "connection refused")):
        return False, "the API server or an admission webhook failed"
    if "violates PodSecurity" in message:
        return True, (
            "the namespace enforces a Pod Security level; aflow's pods pass `restricted` unless "
            "AFLOW_KUBERNETES_POD_SECURITY=none"
        )
    if "serviceaccount" in message:
        return True, "check @kubernetes(service_account=) or AFLOW_KUBERNETES_SERVICE_ACCOUNT"
    if "usage per Container" in message or "LimitRange" in message:
        return True, (
            "the namespace's LimitRange bounds each container: change @kubernetes(cpu=, memory=, "
            "disk=) or @resources"
        )
    return True, ""
