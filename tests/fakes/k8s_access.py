"""RBAC and namespaces for the Kubernetes emulator: which verb on which resource a request is (as
the API server's RequestInfo resolver names it), whether a Role's rules allow it, the 403 the API
server answers when they do not, and SelfSubjectAccessReview's answer. Pure functions;
k8s_server.py applies them when a test has set a Role (`set_role`) or a list of namespaces
(`set_namespaces`). Source: https://kubernetes.io/docs/reference/access-authn-authz/authorization/
("Determine the request verb") and .../rbac/ (rule matching, `*`)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

SSAR_PATH = "/apis/authorization.k8s.io/v1/selfsubjectaccessreviews"
USER = "system:serviceaccount:default:aflow-tester"  # who the emulator says a request comes from


@dataclass(frozen=True)
class Access:
    verb: str
    group: str
    resource: str  # with its subresource: "pods/log"
    namespace: str  # "" for a cluster-wide request
    name: str = ""


def access_of(method: str, path: str, query: dict[str, str]) -> Access | None:
    """The resource request `method path` is, or None for a non-resource path (/version)."""
    parts = [p for p in path.split("/") if p]
    if parts[:2] == ["api", "v1"]:
        group, rest = "", parts[2:]
    elif parts[:1] == ["apis"] and len(parts) >= 3:
        group, rest = parts[1], parts[3:]
    else:
        return None
    namespace = ""
    if len(rest) >= 3 and rest[0] == "namespaces":
        namespace, rest = rest[1], rest[2:]
    if not rest:
        return None
    resource, name, sub = rest[0], (rest[1] if len(rest) > 1 else ""), "/".join(rest[2:])
    if resource == "namespaces" and name:
        namespace = ""  # a Namespace object itself is cluster-scoped
    watching = str(query.get("watch", "")).lower() in ("true", "1")
    verb = {
        "GET": "get" if name else ("watch" if watching else "list"),
        "POST": "create",
        "PUT": "update",
        "PATCH": "patch",
        "DELETE": "delete" if name else "deletecollection",
    }.get(method.upper(), method.lower())
    return Access(verb, group, f"{resource}/{sub}" if sub else resource, namespace, name)


def allowed(rules: list[dict[str, Any]], access: Access) -> bool:
    """Whether a Role's rules (namespaced: only requests in its namespace) allow `access`."""
    for rule in rules:
        groups, resources, verbs = (rule.get(k) or [] for k in ("apiGroups", "resources", "verbs"))
        if (
            (access.group in groups or "*" in groups)
            and (access.resource in resources or "*" in resources)
            and (access.verb in verbs or "*" in verbs)
        ):
            return True
    return False


def forbidden_message(access: Access) -> str:
    """The API server's words for a 403 (its `forbidden` Status)."""
    resource, _, _ = access.resource.partition("/")
    kind = f"{resource}.{access.group}" if access.group else resource
    subject = f'{kind} "{access.name}"' if access.name else kind
    where = f' in the namespace "{access.namespace}"' if access.namespace else " at the cluster scope"
    return (
        f'{subject} is forbidden: User "{USER}" cannot {access.verb} resource "{access.resource}" '
        f'in API group "{access.group}"{where}'
    )


def review(rules: list[dict[str, Any]] | None, body: dict[str, Any]) -> dict[str, Any]:
    """A SelfSubjectAccessReview answered: the body with its status."""
    attrs = (body.get("spec") or {}).get("resourceAttributes") or {}
    resource = attrs.get("resource", "")
    if attrs.get("subresource"):
        resource += "/" + attrs["subresource"]
    access = Access(attrs.get("verb", ""), attrs.get("group", ""), resource, attrs.get("namespace", ""))
    ok = rules is None or (bool(access.namespace) and allowed(rules, access))
    status: dict[str, Any] = {"allowed": ok}
    if ok:
        status["reason"] = 'RBAC: allowed by RoleBinding "aflow-runner"' if rules else "no RBAC"
    out = dict(body)
    out.update(apiVersion="authorization.k8s.io/v1", kind="SelfSubjectAccessReview", status=status)
    out.setdefault("metadata", {"creationTimestamp": None})
    return out
