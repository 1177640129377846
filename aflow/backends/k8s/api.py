"""Talking to the Kubernetes API: the client's configuration and the small HTTP helpers the
watch, log and submission code share (raw responses are read here, errors put in words)."""

from __future__ import annotations

import json
from collections.abc import AsyncGenerator, Awaitable
from typing import Any

import aiohttp
from kubernetes_asyncio import client
from kubernetes_asyncio.client.exceptions import ApiException

from aflow.backends.k8s.settings import KubernetesSettings

REQUEST_SECONDS = 60.0
TRANSIENT = {429, 500, 502, 503, 504}


class Expired(Exception):
    """The watch's resourceVersion is gone (410): list again."""


def explicit_host(settings: KubernetesSettings) -> client.Configuration | None:
    """AFLOW_KUBERNETES_HOST: an API URL without auth (a `kubectl proxy`, or the tests' emulator)."""
    if not settings.host:
        return None
    conf = client.Configuration(host=settings.host)
    conf.verify_ssl = settings.verify_ssl
    return conf


async def lines(resp: aiohttp.ClientResponse) -> AsyncGenerator[str, None]:
    """The response's lines, whatever their length (aiohttp's readline caps it)."""
    rest = b""
    async for chunk in resp.content.iter_any():
        rest += chunk
        if b"\n" in chunk:
            *done, rest = rest.split(b"\n")
            for line in done:
                yield line.decode(errors="replace")
    if rest:
        yield rest.decode(errors="replace")


async def raw(call: Awaitable[Any]) -> aiohttp.ClientResponse:
    """The response of a call made with `_preload_content=False` (typed as the parsed model)."""
    resp = await call
    assert isinstance(resp, aiohttp.ClientResponse)
    return resp


async def read_json(resp: aiohttp.ClientResponse) -> dict[str, Any]:
    data = await resp.read()
    if resp.status == 410:
        raise Expired
    if not 200 <= resp.status < 300:
        raise ApiException(status=resp.status, reason=status_message(data) or resp.reason)
    page = json.loads(data)
    if not isinstance(page, dict):
        raise ValueError(f"the Kubernetes API answered {type(page).__name__}, not an object")
    return page


def status_message(data: bytes | str | None) -> str:
    try:
        return str(json.loads(data or b"").get("message") or "")
    except (ValueError, AttributeError):
        return str(data or "")[:300]


def error_text(e: BaseException) -> str:
    if isinstance(e, ApiException):
        return f"HTTP {e.status}: {status_message(e.body) or e.reason}"
    return f"{type(e).__name__}: {e}" if str(e) else type(e).__name__


def refusal(e: ApiException, name: str, ns: str) -> str:
    what = f"Job {name} in namespace {ns}: {error_text(e)}"
    if e.status == 403:
        return f"{what} (the credentials in use may not create jobs.batch in namespace {ns})"
    if e.status == 404:
        where = "@kubernetes(namespace=) or AFLOW_KUBERNETES_NAMESPACE"
        return f"{what} (does namespace {ns} exist? {where})"
    return what
