"""Watching a kind of object (pods, Jobs) of one run in one namespace: list once for a
resourceVersion, then watch from it; a watch that ends is resumed from the last version seen, one
whose version expired (410) is listed again. Nothing polls."""

from __future__ import annotations

import contextlib
import json
import logging
import random
from collections.abc import Callable
from typing import Any

import aiohttp
import anyio
from kubernetes_asyncio.client.exceptions import ApiException

from aflow.backends.k8s.api import REQUEST_SECONDS, Expired, error_text, lines, read_json

log = logging.getLogger("aflow.kubernetes")

WATCH_SECONDS = 300  # a watch's server-side length; it is then resumed from its last version
LIST_PAGE = 500

Handler = Callable[[str, dict[str, Any]], None]


def _selectors(selector: str, fields: str | None) -> dict[str, str]:
    out = {"label_selector": selector} if selector else {}
    if fields:
        out["field_selector"] = fields
    return out


async def list_all(
    lister: Callable[..., Any], ns: str, selector: str, fields: str | None = None
) -> tuple[list[dict[str, Any]], str]:
    """Every object the selectors match, page by page, and the first page's resourceVersion."""
    items: list[dict[str, Any]] = []
    version, token = "", None
    while True:
        kwargs: dict[str, Any] = {"_continue": token} if token else {}
        resp = await lister(
            ns,
            **_selectors(selector, fields),
            limit=LIST_PAGE,
            _preload_content=False,
            _request_timeout=REQUEST_SECONDS,
            **kwargs,
        )
        async with resp:
            page = await read_json(resp)
        version = version or page["metadata"]["resourceVersion"]
        items += page.get("items") or []
        token = page["metadata"].get("continue")
        if not token:
            return items, version


async def stream(
    lister: Callable[..., Any],
    ns: str,
    selector: str,
    version: str,
    handle: Handler,
    fields: str | None = None,
) -> str:
    """One watch from `version` until the server ends it; returns the last version seen."""
    resp = await lister(
        ns,
        **_selectors(selector, fields),
        watch=True,
        resource_version=version,
        allow_watch_bookmarks=True,
        timeout_seconds=WATCH_SECONDS,
        _preload_content=False,
        _request_timeout=aiohttp.ClientTimeout(sock_connect=30, sock_read=WATCH_SECONDS + 60),
    )
    async with resp:
        if resp.status != 200:
            await read_json(resp)  # raises, Expired for 410
        async with contextlib.aclosing(lines(resp)) as events:
            async for line in events:
                if not line.strip():
                    continue
                event = json.loads(line)
                kind, obj = event.get("type"), event.get("object") or {}
                if kind == "ERROR":
                    if obj.get("code") == 410:
                        raise Expired
                    raise ValueError(f"watch error: {obj.get('message')}")
                version = obj.get("metadata", {}).get("resourceVersion") or version
                if kind != "BOOKMARK":
                    handle(kind, obj)
    return version


async def watch_forever(
    lister: Callable[..., Any],
    ns: str,
    selector: str,
    handle: Handler,
    relisted: Callable[[list[dict[str, Any]]], None],
    fields: str | None = None,
    optional: bool = False,
) -> None:
    """List, then watch from the list's resourceVersion, for as long as the run lasts.
    `relisted(items)` is told what each (re)list found. An `optional` watch the credentials may
    not make (403) is given up, with a warning."""
    version: str | None = None
    failures = 0
    while True:
        try:
            if version is None:
                items, version = await list_all(lister, ns, selector, fields)
                relisted(items)
            version = await stream(lister, ns, selector, version, handle, fields)
            failures = 0
        except Expired:
            version = None
        except (ApiException, aiohttp.ClientError, TimeoutError, ValueError) as e:
            if optional and isinstance(e, ApiException) and e.status == 403:
                log.warning("cannot watch in Kubernetes namespace %s: %s", ns, error_text(e))
                return
            failures += 1
            if failures in (3, 10) or failures % 50 == 0:
                log.warning("Kubernetes watch in namespace %s keeps failing: %s", ns, error_text(e))
            await anyio.sleep(min(30.0, 0.2 * 2**failures) * random.uniform(0.5, 1.0))
