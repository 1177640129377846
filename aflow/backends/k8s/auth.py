"""Credentials for the Kubernetes API: where the client's Configuration comes from, and keeping
a kube config's exec-plugin token fresh.

Exec plugins (EKS `aws eks get-token`: 15 minutes; GKE's gke-gcloud-auth-plugin and AKS's
kubelogin: about an hour) hand out short-lived tokens, and kubernetes-asyncio runs the plugin only
when the config is loaded. Here the token is refreshed before each request once it is within
REFRESH_MARGIN of its expirationTimestamp, and again when the API answers 401 (a plugin may give no
expiry; kubectl does the same). A plugin that fails, or a fresh token the API still refuses, raises
CredentialsError naming the plugin and what to do; the backend fails its tasks with it. In-cluster
service-account tokens are re-read from their file by kubernetes-asyncio itself.
"""

from __future__ import annotations

import copy
import datetime
from typing import Any

import anyio
from kubernetes_asyncio import client, config
from kubernetes_asyncio.client.exceptions import ApiException

from aflow.backends.errors import BackendUnavailable
from aflow.backends.k8s.api import error_text, explicit_host
from aflow.backends.k8s.settings import KubernetesSettings
from aflow.exception import AflowException

REFRESH_MARGIN = datetime.timedelta(seconds=60)
PLUGIN_SECONDS = 60.0  # an exec plugin that has not answered by then has failed


class CredentialsError(AflowException):
    """The kube config's credentials could not be refreshed, or the API refuses them."""


class ExecCredentials:
    """The token of a kube config user whose `exec` plugin issues it, kept fresh."""

    def __init__(self, loader: Any) -> None:
        self.loader = loader
        plugin = loader._user["exec"]
        self.command = " ".join([str(plugin["command"]), *map(str, plugin.safe_get("args") or [])])
        self.failed: str | None = None
        self.refreshes = 0
        self._lock = anyio.Lock()
        self._issued = datetime.datetime.now(datetime.UTC)

    def _due(self) -> bool:
        expiry: datetime.datetime | None = getattr(self.loader, "exec_plugin_expiry", None)
        if expiry is None:
            return False  # no expiry given: refreshed when the API answers 401
        # A minute ahead, or a quarter of the token's life if shorter.
        margin = min(REFRESH_MARGIN, (expiry - self._issued) / 4)
        return datetime.datetime.now(datetime.UTC) >= expiry - margin

    async def hook(self, conf: client.Configuration) -> None:
        """Configuration.refresh_api_key_hook: runs before every request's auth header is made."""
        if self.failed:
            raise CredentialsError(self.failed)
        if self._due():
            await self.refresh(None)
        conf.api_key["BearerToken"] = self.loader.token

    async def refresh(self, refused: str | None) -> None:
        """Run the plugin again: when due, or when the API refused the token `refused`."""
        async with self._lock:
            if self.failed:
                raise CredentialsError(self.failed)
            if refused is None and not self._due():
                return  # refreshed while this request waited for the lock
            if refused is not None and self.loader.token != refused:
                return  # the refused token was replaced meanwhile
            if hasattr(self.loader, "exec_plugin_expiry"):
                del self.loader.exec_plugin_expiry  # else the loader keeps its cached token
            try:
                with anyio.fail_after(PLUGIN_SECONDS):
                    await self.loader.load_from_exec_plugin()
                self._issued = datetime.datetime.now(datetime.UTC)
            except Exception as e:
                self.failed = (
                    f"@kubernetes: the kube config's credentials expired and could not be renewed: "
                    f"its exec plugin `{self.command}` failed ({error_text(e)}). Renew the login it "
                    "uses (e.g. `aws sso login`, `gcloud auth login`, `az login`), check the plugin "
                    "runs on its own, then run again"
                )
                raise CredentialsError(self.failed) from None
            self.refreshes += 1

    def refused(self) -> CredentialsError:
        self.failed = (
            f"@kubernetes: the Kubernetes API refused (HTTP 401) a token its exec plugin "
            f"`{self.command}` had just issued: are the kube config's context and user the right "
            "ones for this cluster?"
        )
        return CredentialsError(self.failed)


class RefreshingApiClient(client.ApiClient):
    """An ApiClient that answers a 401 by refreshing the exec-plugin token and trying once more."""

    def __init__(self, conf: client.Configuration, credentials: ExecCredentials) -> None:
        super().__init__(conf)
        self.credentials = credentials

    async def request(
        self,
        method: str,
        url: str,
        query_params: Any = None,
        headers: Any = None,
        post_params: Any = None,
        body: Any = None,
        _preload_content: bool = True,
        _request_timeout: Any = None,
    ) -> Any:
        headers = dict(headers or {})
        for attempt in range(2):
            sent = headers.get("authorization")
            try:
                resp = await super().request(
                    method, url, query_params=query_params, headers=headers,
                    post_params=post_params, body=body, _preload_content=_preload_content,
                    _request_timeout=_request_timeout,
                )  # fmt: skip
            except ApiException as e:
                if e.status != 401:
                    raise
            else:
                if getattr(resp, "status", None) != 401:
                    return resp
                resp.release()
            if attempt:
                raise self.credentials.refused()
            await self.credentials.refresh(sent or "")
            headers["authorization"] = self.credentials.loader.token
        raise AssertionError("unreachable")


async def clients(
    settings: KubernetesSettings, pool: int
) -> tuple[client.ApiClient, client.ApiClient, str]:
    """Two API clients (control calls; log streams with `pool` connections) and the API's URL."""
    conf = explicit_host(settings)
    credentials: ExecCredentials | None = None
    if conf is None:
        conf = client.Configuration()
        try:
            if settings.in_cluster:
                config.load_incluster_config(client_configuration=conf)  # type: ignore[no-untyped-call]
            else:
                # KUBECONFIG passed: kubernetes-asyncio reads the variable once, when first imported.
                loader = await config.load_kube_config(
                    config_file=settings.kubeconfig,
                    client_configuration=conf,
                    context=settings.context,
                )
                if loader._user is not None and "exec" in loader._user and hasattr(loader, "token"):
                    credentials = ExecCredentials(loader)
        except Exception as e:
            raise BackendUnavailable(
                f"@kubernetes: no cluster to talk to ({error_text(e)}): set AFLOW_KUBERNETES_HOST to "
                "the API's URL, or point KUBECONFIG at a kube config (AFLOW_KUBERNETES_CONTEXT picks "
                "its context)"
            ) from None
    logs_conf = copy.deepcopy(conf)  # its own connection pool: logs never starve control calls
    logs_conf.connection_pool_maxsize = pool
    if credentials is None:
        return client.ApiClient(conf), client.ApiClient(logs_conf), str(conf.host)
    conf.refresh_api_key_hook = logs_conf.refresh_api_key_hook = credentials.hook
    made = RefreshingApiClient(conf, credentials), RefreshingApiClient(logs_conf, credentials)
    return *made, str(conf.host)
