"""Pod admission for the Kubernetes emulator (tests/fakes/k8s_server.py): what an API server checks
before it creates a Job's pod, as pure functions over the pod's spec. A refusal is the message the
Job controller puts in its FailedCreate event (the Job gets no pod and no condition).

In the order of a real API server's admission chain: the ServiceAccount admission plugin, Pod
Security admission (the namespace's `pod-security.kubernetes.io/enforce` label: `baseline` or
`restricted`, as of Kubernetes 1.31's Pod Security Standards), LimitRanger (type Container, `max` and
`min`), ResourceQuota (`pods`, `requests.cpu`, `requests.memory`, `limits.cpu`, `limits.memory`,
`cpu`, `memory`, counted over the namespace's pods that have not ended).
"""

from __future__ import annotations

import re
from decimal import Decimal
from typing import Any

_SUFFIXES = {
    "": 1,
    "m": Decimal("0.001"),
    "k": 10**3,
    "M": 10**6,
    "G": 10**9,
    "T": 10**12,
    "P": 10**15,
    "E": 10**18,
    "Ki": 2**10,
    "Mi": 2**20,
    "Gi": 2**30,
    "Ti": 2**40,
    "Pi": 2**50,
    "Ei": 2**60,
}
_QUANTITY = re.compile(r"([+-]?[0-9.]+(?:[eE][+-]?[0-9]+)?)([a-zA-Z]*)")


def quantity(text: Any) -> Decimal:
    """A resource quantity ("500m", "4", "512Mi", "1e3") as a number."""
    m = _QUANTITY.fullmatch(str(text).strip())
    if not m or m[2] not in _SUFFIXES:
        raise ValueError(f"quantities must match the regular expression: {text!r}")
    return Decimal(m[1]) * Decimal(_SUFFIXES[m[2]])


def service_account_refusal(ns: str, pod: dict, accounts: set[str]) -> str | None:
    name = pod["spec"].get("serviceAccountName") or "default"
    if name in accounts:
        return None
    return f'error looking up service account {ns}/{name}: serviceaccount "{name}" not found'


def _containers(spec: dict) -> list[dict]:
    return [*(spec.get("initContainers") or []), *(spec.get("containers") or [])]


def pod_security_refusal(level: str | None, pod: dict) -> str | None:
    """The Pod Security Standards' `baseline` and `restricted` checks aflow can meet (privileged,
    host namespaces, hostPath volumes; privilege escalation, capabilities, running as non-root,
    seccomp, volume types), in Pod Security admission's words."""
    if level not in ("baseline", "restricted"):
        return None
    spec = pod["spec"]
    psc = spec.get("securityContext") or {}
    out: list[str] = []
    names = [c.get("name", "") for c in _containers(spec)]
    sc = {c.get("name", ""): c.get("securityContext") or {} for c in _containers(spec)}

    def quoted(items: list[str]) -> str:
        return ", ".join(f'"{n}"' for n in items)

    def plural(items: list[str]) -> str:
        return "container" if len(items) == 1 else "containers"

    host = [k for k in ("hostNetwork", "hostPID", "hostIPC") if spec.get(k)]
    if host:
        out.append(f"host namespaces ({', '.join(f'{k}=true' for k in host)})")
    privileged = [n for n in names if sc[n].get("privileged")]
    if privileged:
        out.append(
            f"privileged ({plural(privileged)} {quoted(privileged)} must not set "
            "securityContext.privileged=true)"
        )
    host_paths = [v.get("name", "") for v in spec.get("volumes") or [] if "hostPath" in v]
    if host_paths:
        out.append(f"hostPath volumes (volumes {quoted(host_paths)})")
    if level == "restricted":
        allowed = {
            "configMap",
            "csi",
            "downwardAPI",
            "emptyDir",
            "ephemeral",
            "persistentVolumeClaim",
            "projected",
            "secret",
            "name",
        }
        odd = [v.get("name", "") for v in spec.get("volumes") or [] if set(v) - allowed]
        if odd and not host_paths:
            out.append(f"restricted volume types (volumes {quoted(odd)})")
        escalating = [n for n in names if sc[n].get("allowPrivilegeEscalation") is not False]
        if escalating:
            out.append(
                f"allowPrivilegeEscalation != false ({plural(escalating)} {quoted(escalating)} "
                "must set securityContext.allowPrivilegeEscalation=false)"
            )
        caps = [
            n
            for n in names
            if "ALL" not in ((sc[n].get("capabilities") or {}).get("drop") or [])
            or set((sc[n].get("capabilities") or {}).get("add") or []) - {"NET_BIND_SERVICE"}
        ]
        if caps:
            out.append(
                f"unrestricted capabilities ({plural(caps)} {quoted(caps)} must set "
                'securityContext.capabilities.drop=["ALL"])'
            )
        root = [n for n in names if sc[n].get("runAsNonRoot", psc.get("runAsNonRoot")) is not True]
        if root:
            out.append(
                f"runAsNonRoot != true (pod or {plural(root)} {quoted(root)} must set "
                "securityContext.runAsNonRoot=true)"
            )
        uid0 = [n for n in names if sc[n].get("runAsUser", psc.get("runAsUser")) == 0]
        if uid0:
            out.append(f"runAsUser=0 (pod or {plural(uid0)} {quoted(uid0)} must not set runAsUser=0)")
        seccomp = [
            n
            for n in names
            if (
                (sc[n].get("seccompProfile") or psc.get("seccompProfile") or {}).get("type")
                not in ("RuntimeDefault", "Localhost")
            )
        ]
        if seccomp:
            out.append(
                f"seccompProfile (pod or {plural(seccomp)} {quoted(seccomp)} must set "
                'securityContext.seccompProfile.type to "RuntimeDefault" or "Localhost")'
            )
    if not out:
        return None
    return f'violates PodSecurity "{level}:latest": ' + ", ".join(out)


def limit_range_refusal(limits: dict[str, dict[str, str]] | None, pod: dict) -> str | None:
    """LimitRanger, type Container: `max` bounds each container's limit, `min` its request."""
    if not limits:
        return None
    for c in pod["spec"].get("containers") or []:
        res = c.get("resources") or {}
        for resource, bound in (limits.get("max") or {}).items():
            limit = (res.get("limits") or {}).get(resource)
            if limit is None:
                return f"maximum {resource} usage per Container is {bound}.  No limit is specified"
            if quantity(limit) > quantity(bound):
                return f"maximum {resource} usage per Container is {bound}, but limit is {limit}"
        for resource, bound in (limits.get("min") or {}).items():
            request = (res.get("requests") or {}).get(resource)
            if request is None:
                return f"minimum {resource} usage per Container is {bound}.  No request is specified"
            if quantity(request) < quantity(bound):
                return f"minimum {resource} usage per Container is {bound}, but request is {request}"
    return None


def _usage(pod: dict) -> dict[str, Decimal]:
    out = {"pods": Decimal(1)}
    for c in pod["spec"].get("containers") or []:
        res = c.get("resources") or {}
        for kind in ("requests", "limits"):
            for resource, value in (res.get(kind) or {}).items():
                key = f"{kind}.{resource}"
                out[key] = out.get(key, Decimal(0)) + quantity(value)
                if kind == "requests":  # "cpu" / "memory" in a quota mean requests
                    out[resource] = out.get(resource, Decimal(0)) + quantity(value)
    return out


def _show(value: Decimal) -> str:
    return str(value.normalize()) if value != value.to_integral() else str(int(value))


def quota_refusal(name: str, hard: dict[str, str] | None, pod: dict, running: list[dict]) -> str | None:
    """ResourceQuota `name` with these `hard` limits: would this pod exceed it?"""
    if not hard:
        return None
    asked = _usage(pod)
    used: dict[str, Decimal] = {}
    for other in running:
        for key, value in _usage(other).items():
            used[key] = used.get(key, Decimal(0)) + value
    over = [
        key
        for key, limit in sorted(hard.items())
        if asked.get(key, Decimal(0)) and used.get(key, Decimal(0)) + asked[key] > quantity(limit)
    ]
    if not over:
        return None
    requested = ",".join(f"{k}={_show(asked[k])}" for k in over)
    in_use = ",".join(f"{k}={_show(used.get(k, Decimal(0)))}" for k in over)
    limited = ",".join(f"{k}={hard[k]}" for k in over)
    return f"exceeded quota: {name}, requested: {requested}, used: {in_use}, limited: {limited}"
