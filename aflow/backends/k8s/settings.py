"""The AFLOW_KUBERNETES_* settings (and the kube config's own variables), read from the environment
once, when a backend or a set-up check starts, into one frozen object; a bad value is refused
naming the variable and what it takes. Nothing else of backends/k8s reads os.environ."""

from __future__ import annotations

import os
from dataclasses import dataclass

from aflow.env_numbers import env_number
from aflow.exception import AflowException


@dataclass(frozen=True)
class KubernetesSettings:
    host: str | None = None  # AFLOW_KUBERNETES_HOST: an API URL without auth (kubectl proxy)
    verify_ssl: bool = True  # AFLOW_KUBERNETES_VERIFY_SSL=0 skips TLS verification
    kubeconfig: str | None = None  # KUBECONFIG (None: ~/.kube/config)
    context: str | None = None  # AFLOW_KUBERNETES_CONTEXT (None: the config's current one)
    in_cluster: bool = False  # KUBERNETES_SERVICE_HOST set and no KUBECONFIG: the pod's account
    namespace: str = "default"
    service_account: str | None = None
    create_seconds: float = 120.0  # a Job none of whose pods can be created fails after this
    pull_seconds: float = 300.0  # a pod failing to pull its image fails after this
    restricted: bool = True  # AFLOW_KUBERNETES_POD_SECURITY: restricted (default) or none
    run_as_user: int | None = 1000  # AFLOW_KUBERNETES_RUN_AS_USER; None: the image's own user
    ttl_seconds: int | None = 3600  # AFLOW_KUBERNETES_TTL_SECONDS; None: Jobs stay

    @classmethod
    def from_env(cls) -> KubernetesSettings:
        env = os.environ
        return cls(
            host=(env.get("AFLOW_KUBERNETES_HOST") or "").rstrip("/") or None,
            verify_ssl=env.get("AFLOW_KUBERNETES_VERIFY_SSL", "1") != "0",
            kubeconfig=env.get("KUBECONFIG") or None,
            context=env.get("AFLOW_KUBERNETES_CONTEXT") or None,
            in_cluster=bool(env.get("KUBERNETES_SERVICE_HOST")) and not env.get("KUBECONFIG"),
            namespace=env.get("AFLOW_KUBERNETES_NAMESPACE") or cls.namespace,
            service_account=env.get("AFLOW_KUBERNETES_SERVICE_ACCOUNT") or None,
            create_seconds=env_number("AFLOW_KUBERNETES_CREATE_SECONDS", cls.create_seconds, minimum=0),
            pull_seconds=env_number("AFLOW_KUBERNETES_IMAGE_PULL_SECONDS", cls.pull_seconds, minimum=0),
            restricted=_pod_security(),
            run_as_user=_run_as_user(),
            ttl_seconds=_ttl_seconds(),
        )


def _pod_security() -> bool:
    """AFLOW_KUBERNETES_POD_SECURITY: restricted (the default) or none."""
    level = (os.environ.get("AFLOW_KUBERNETES_POD_SECURITY") or "restricted").strip().lower()
    if level not in ("restricted", "none"):
        raise AflowException(
            f"AFLOW_KUBERNETES_POD_SECURITY={level!r}: use 'restricted' (the default) or 'none'"
        )
    return level == "restricted"


def _run_as_user() -> int | None:
    """AFLOW_KUBERNETES_RUN_AS_USER: a uid (1000 by default), or "image": the image's own user,
    which must then not be root."""
    user = (os.environ.get("AFLOW_KUBERNETES_RUN_AS_USER") or "1000").strip()
    if user == "image":
        return None
    if not user.isdigit() or int(user) == 0:
        raise AflowException(
            f"AFLOW_KUBERNETES_RUN_AS_USER={user!r}: a non-zero uid, or 'image' (the image's user)"
        )
    return int(user)


def _ttl_seconds() -> int | None:
    """AFLOW_KUBERNETES_TTL_SECONDS: how long a finished Job (and its pods) stays (3600 by
    default; "none": until deleted by hand)."""
    value = (os.environ.get("AFLOW_KUBERNETES_TTL_SECONDS") or "3600").strip().lower()
    if value == "none":
        return None
    if not value.isdigit():
        raise AflowException(f"AFLOW_KUBERNETES_TTL_SECONDS={value!r}: a number of seconds, or 'none'")
    return int(value)
