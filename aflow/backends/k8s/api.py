"""Talking to the Kubernetes API: the client's configuration and the small HTTP helpers the
watch, log and submission code share (raw responses are read here, errors put in words)."""

from __future__ import annotations

import json
import os
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
from kubernetes_asyncio import client
from kubernetes_asyncio.client.exceptions import ApiException

REQUEST_SECONDS = 60.0
TRANSIENT = {429, 500, 502, 503, 504}


class Expired(Exception):
    """The watch's resourceVersion is gone (410): list again."""


def explicit_host() -> client.Configuration | None:
    """AFLOW_KUBERNETES_HOST: an API URL without auth (a `kubectl proxy`, or the tests' emulator)."""
    host = os.environ.get("AFLOW_KUBERNETES_HOST")
    if not host:
        return None
    conf = client.Configuration(host=host.rstrip("/"))
    conf.verify_ssl = os.environ.get("AFLOW_KUBERNETES_VERIFY_SSL", "1") != "0"
    return conf


async def lines(resp: aiohttp.ClientResponse) -> AsyncIterator[str]:
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


async def read_json(resp: aiohttp.ClientResponse) -> dict[str, Any]:
    data = await resp.read()
    if resp.status == 410:
        raise Expired
    if not 200 <= resp.status < 300:
        raise ApiException(status=resp.status, reason=status_message(data) or resp.reason)
    return json.loads(data)


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
