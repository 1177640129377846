"""A pod's log: followed while the pod runs (one stream per running pod, reopened where it broke,
skipping the lines already sent), or read whole once it has ended."""

from __future__ import annotations

import contextlib
import logging
from dataclasses import dataclass, field

import aiohttp
import anyio
from kubernetes_asyncio import client
from kubernetes_asyncio.client.exceptions import ApiException

from aflow.backends.k8s.api import REQUEST_SECONDS, error_text, lines, raw
from aflow.backends.k8s.manifests import CONTAINER
from aflow.backends.remote import RemoteTask

log = logging.getLogger("aflow.kubernetes")

DRAIN_SECONDS = 30.0  # after a pod ends, how long its log may take to arrive in full
LOG_STREAMS = 256  # connections for following logs; a pod waiting for one is read whole at its end


@dataclass
class LogFollow:
    """A pod's log, followed while it runs."""

    pod: str
    scope: anyio.CancelScope = field(default_factory=anyio.CancelScope)
    connected: bool = False
    sent: int = 0  # lines handed to the task's log: a reconnect skips them
    ending: anyio.Event = field(default_factory=anyio.Event)  # the watch saw the pod end
    done: anyio.Event = field(default_factory=anyio.Event)


async def follow_log(api: client.ApiClient, ns: str, task: RemoteTask, follow: LogFollow) -> None:
    """Send the pod's log lines to the task's log as they come. The stream ends when the
    container does; a broken one is reopened, skipping the lines already sent."""
    core = client.CoreV1Api(api)
    errors = 0
    try:
        with follow.scope:
            while task.exit is None and errors < 10:
                try:
                    resp = await raw(
                        core.read_namespaced_pod_log(
                            follow.pod,
                            ns,
                            container=CONTAINER,
                            follow=True,
                            _preload_content=False,
                            _request_timeout=aiohttp.ClientTimeout(sock_connect=30),
                        )
                    )
                    async with resp:
                        if resp.status not in (200, 400):  # 400: not started yet
                            log.info("log of pod %s: HTTP %s", follow.pod, resp.status)
                            return  # the pod's end reads it whole, if it is still there
                        if resp.status == 200:
                            follow.connected = True
                            skip = follow.sent
                            async with contextlib.aclosing(lines(resp)) as got:
                                async for line in got:
                                    if skip:
                                        skip -= 1
                                        continue
                                    follow.sent += 1
                                    await task.logs.line("stdout", line)
                except (ApiException, aiohttp.ClientError, TimeoutError) as e:
                    errors += 1
                    log.info("following the log of pod %s: %s", follow.pod, error_text(e))
                # Ended with the container, or broke: done once the watch saw the pod end.
                with anyio.move_on_after(0.5):
                    await follow.ending.wait()
                if follow.ending.is_set() and follow.connected:
                    return
    finally:
        follow.done.set()


async def read_log(api: client.ApiClient, ns: str, task: RemoteTask, pod: str, skip: int) -> None:
    """The whole log of an ended pod, less its first `skip` lines (sent already)."""
    resp = await raw(
        client.CoreV1Api(api).read_namespaced_pod_log(
            pod, ns, container=CONTAINER, _preload_content=False, _request_timeout=REQUEST_SECONDS
        )
    )
    async with resp:
        if resp.status != 200:
            return
        async with contextlib.aclosing(lines(resp)) as got:
            async for line in got:
                if skip:
                    skip -= 1
                    continue
                await task.logs.line("stdout", line)
