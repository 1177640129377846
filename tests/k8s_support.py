"""What the @kubernetes backend tests share: the emulator fixture wired to a moto S3 datastore, and
helpers to run a flow in-process and read what the cluster was asked."""

from __future__ import annotations

import time
from typing import Any

import anyio
import pytest

import aflow


@pytest.fixture
def k8s(k8s_api: Any, s3_datastore: tuple[str, str], monkeypatch: pytest.MonkeyPatch) -> Any:
    """The emulator, with the launching process pointed at it and the pods given what a cluster's
    service account would give them: credentials for the (moto) S3 store."""
    monkeypatch.setenv("AFLOW_KUBERNETES_HOST", k8s_api.url)
    for name in ("AFLOW_KUBERNETES_NAMESPACE", "AFLOW_KUBERNETES_IMAGE", "AFLOW_TEST_COMPUTE"):
        monkeypatch.delenv(name, raising=False)
    k8s_api.pod_env.update(
        {
            "AWS_ACCESS_KEY_ID": "testing",
            "AWS_SECRET_ACCESS_KEY": "testing",
            "AWS_DEFAULT_REGION": "us-east-1",
        }
    )
    k8s_api.store = s3_datastore
    return k8s_api


def store_options(k8s: Any) -> dict[str, str]:
    datastore, root = k8s.store
    return {"datastore": datastore, "datastore_root": root}


def job_posts(k8s: Any, step: str | None = None) -> list[Any]:
    posts = [p for p in k8s.calls("POST", r"/jobs$") if p.status is None]
    if step is None:
        return posts
    return [p for p in posts if p.body["metadata"]["labels"]["aflow.io/step"] == step]


def run(
    flow_cls: type, k8s: Any, timeout: float = 120, **options: Any
) -> tuple[Any, list[tuple[float, Any]]]:
    """Run a flow in-process; its Run and its events, each with the time it arrived."""

    async def go() -> tuple[Any, list[tuple[float, Any]]]:
        events: list[tuple[float, Any]] = []
        with anyio.fail_after(timeout):
            async with aflow.start_flow(flow_cls, **store_options(k8s), **options) as running:
                async for event in running.events():
                    events.append((time.monotonic(), event))
            return await running.wait(), events

    return anyio.run(go)
