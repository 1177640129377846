"""Where `S3(run=...)` points: the run's own prefix below the data-tools root.

The root is AFLOW_DATATOOLS_S3ROOT when set; else, for a run stored on S3, `<its datastore
root>/data`; else `$AFLOW_DATASTORE_SYSROOT_S3/data`. Below it each run has `<Flow>/<run_id>`, as
Metaflow's DATATOOLS_S3ROOT does. `bucket=` and `prefix=` replace the root's parts.
"""

from __future__ import annotations

import os
from typing import Any

from aflow.s3.objects import MetaflowS3URLException

DATA_SUFFIX = "data"


def datatools_root(store_root: str | None = None) -> str | None:
    explicit = os.environ.get("AFLOW_DATATOOLS_S3ROOT")
    if explicit:
        return explicit.rstrip("/")
    for root in (store_root, os.environ.get("AFLOW_DATASTORE_SYSROOT_S3")):
        if root and root.startswith("s3://"):
            return f"{root.rstrip('/')}/{DATA_SUFFIX}"
    return None


def _flow_and_run(run: Any) -> tuple[str, str, str | None]:
    """(flow, run id, the run's store root) of a running flow (`self`) or a client Run."""
    from aflow.flowspec import FlowSpec

    if isinstance(run, FlowSpec):
        task = run.__dict__.get("_aflow_task")
        if task is None:
            raise MetaflowS3URLException(
                "S3(run=self) works inside a running step only; outside one give "
                "S3(run=Run('Flow/run_id')) or S3(s3root='s3://bucket/prefix')"
            )
        return task.spec.flow_name, task.spec.run_id, task.spec.store_root
    pathspec = getattr(run, "pathspec", None)
    if not isinstance(pathspec, str) or pathspec.count("/") != 1:
        raise MetaflowS3URLException(
            f"S3(run={run!r}): run= takes the running flow (self) or a client Run"
        )
    flow, run_id = pathspec.split("/")
    store = getattr(getattr(run, "_core", None), "store", None)
    return flow, run_id, getattr(store, "url", None)


def run_root(run: Any, bucket: str | None, prefix: str | None) -> str:
    flow, run_id, store_root = _flow_and_run(run)
    root = datatools_root(store_root)
    if root is None and not bucket:
        raise MetaflowS3URLException(
            "S3(run=...) needs an S3 root for data: run with --datastore s3, set "
            "AFLOW_DATATOOLS_S3ROOT=s3://bucket/prefix, or pass bucket= and prefix="
        )
    root_bucket, _, root_prefix = (root or "s3://").removeprefix("s3://").partition("/")
    bucket = bucket or root_bucket
    base = (prefix if prefix is not None else root_prefix).strip("/")
    path = "/".join(p for p in (base, flow, run_id) if p)
    return f"s3://{bucket}/{path}"
