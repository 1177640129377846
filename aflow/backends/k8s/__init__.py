"""The @kubernetes backend, by concern: api (client helpers), auth (credentials), manifests (the
Job built), status (what pods and Jobs say), watch, logs, and backend (the bookkeeping)."""

from aflow.backends.k8s.backend import KubernetesBackend
from aflow.backends.k8s.manifests import check_step

__all__ = ["KubernetesBackend", "check_step"]
