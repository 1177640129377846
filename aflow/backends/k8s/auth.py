"""Credentials for the Kubernetes API: where the client's Configuration comes from."""

from __future__ import annotations

import os

from kubernetes_asyncio import client, config

from aflow.backends.k8s.api import error_text, explicit_host
from aflow.exception import AflowException


async def configuration() -> client.Configuration:
    """AFLOW_KUBERNETES_HOST, else the kube config, else the in-cluster service account."""
    conf = explicit_host()
    if conf is not None:
        return conf
    conf = client.Configuration()
    try:
        if os.environ.get("KUBERNETES_SERVICE_HOST") and not os.environ.get("KUBECONFIG"):
            config.load_incluster_config(client_configuration=conf)
        else:
            await config.load_kube_config(
                client_configuration=conf, context=os.environ.get("AFLOW_KUBERNETES_CONTEXT")
            )
    except Exception as e:
        raise AflowException(
            f"@kubernetes: no cluster to talk to ({error_text(e)}): set AFLOW_KUBERNETES_HOST to the "
            "API's URL, or point KUBECONFIG at a kube config (AFLOW_KUBERNETES_CONTEXT picks its "
            "context)"
        ) from None
    return conf
