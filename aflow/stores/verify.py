"""`aflow verify`: a fsck of the store. Walks runs' records and the blobs they name (or, for a whole
flow, every blob under its data/), checks each against its seal or its hash, reports what is
damaged or missing and, asked to, moves damaged files aside.

Read-only unless `quarantine` is set; moving aside needs a store that can rename (the local one):
cloud objects are written whole at PUT, so their damage is rare and is reported, not moved.
Blocking hashes run in worker threads; blobs are checked once each however many records name them.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field

import anyio.to_thread

from aflow.exception import DamagedData
from aflow.stores.artifacts import ArtifactRef, blob_key
from aflow.stores.base import NotFound, ObjectStore, store_path
from aflow.stores.integrity import blob_problem
from aflow.stores.local import LocalFiles
from aflow.stores.records import R, RunRecord, TaskRecord, run_record_key

QUARANTINE = ".quarantine"


@dataclass
class Finding:
    kind: str  # damaged | missing | incomplete
    path: str
    reason: str
    owner: str = ""  # what it belongs to: a run, a task, an artifact
    moved_to: str | None = None


@dataclass
class Report:
    records: int = 0
    blobs: int = 0
    blob_bytes: int = 0
    findings: list[Finding] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not any(f.kind in ("damaged", "missing") for f in self.findings)


class _Walk:
    def __init__(self, store: ObjectStore, quarantine: bool, say: Callable[[Finding], None]) -> None:
        self.store = store
        self.quarantine = quarantine
        self.say = say
        self.report = Report()
        self.blobs: dict[str, str | None] = {}  # digest -> problem (None: intact, "": missing)
        self.limiter = anyio.CapacityLimiter(4)

    def found(self, finding: Finding, key: str | None = None) -> None:
        if key is not None and self.quarantine and finding.kind == "damaged":
            finding.moved_to = self._move_aside(key)
        self.report.findings.append(finding)
        self.say(finding)

    def _move_aside(self, key: str) -> str | None:
        sync = self.store.blocking() if self.store.local else None
        if not isinstance(sync, LocalFiles):  # only the local store moves a file aside
            return None
        return sync.move_aside(key, f"{QUARANTINE}/{time.strftime('%Y%m%dT%H%M%S')}/{key}")

    async def blob(self, flow: str, digest: str, size: int | None, owner: str) -> None:
        if digest not in self.blobs:
            key = blob_key(flow, digest)
            self.blobs[digest] = "?"
            try:
                data = await self.store.get(key)
            except NotFound:
                self.blobs[digest] = ""
            else:
                async with self.limiter:
                    problem = await anyio.to_thread.run_sync(blob_problem, data, digest, size)
                self.report.blobs += 1
                self.report.blob_bytes += memoryview(data).nbytes
                del data
                self.blobs[digest] = problem
                if problem:
                    self.found(Finding("damaged", store_path(self.store.url, key), problem, owner), key)
                    return
        if self.blobs[digest] == "":
            path = store_path(self.store.url, blob_key(flow, digest))
            self.found(Finding("missing", path, "named by a record but not in the store", owner))

    async def record(self, cls: type[R], key: str, owner: str) -> R | None:
        try:
            data = await self.store.get(key)
        except NotFound:
            return None
        self.report.records += 1
        try:
            return cls.unpack(data, store_path(self.store.url, key))
        except DamagedData as e:
            self.found(Finding("damaged", e.path, e.reason, owner), key)
            return None

    async def refs(self, flow: str, refs: dict[str, ArtifactRef], owner: str) -> None:
        for name, ref in refs.items():
            if "k" in ref:
                await self.blob(flow, ref["k"], ref.get("s"), f"artifact '{name}' of {owner}")

    async def run(self, flow: str, run_id: str) -> None:
        pathspec = f"{flow}/{run_id}"
        key = run_record_key(flow, run_id)
        run = await self.record(RunRecord, key, f"run {pathspec}")
        names = await self.store.list(f"{flow}/{run_id}")
        if run is None and "run.mpk" not in names:
            path = store_path(self.store.url, f"{flow}/{run_id}")
            self.found(Finding("incomplete", path, "a run folder without a run record", pathspec))
        if run is not None:
            await self.refs(flow, run.param_refs, f"run {pathspec} (a parameter)")
        for step in names:
            if "." in step:
                continue
            for task_id in await self.store.list(f"{flow}/{run_id}/{step}"):
                await self.task(flow, run_id, step, task_id)

    async def task(self, flow: str, run_id: str, step: str, task_id: str) -> None:
        prefix = f"{flow}/{run_id}/{step}/{task_id}"
        for name in await self.store.list(prefix):
            if not name.endswith(".mpk"):
                continue
            owner = f"task {prefix} (attempt {name.split('.')[0]})"
            record = await self.record(TaskRecord, f"{prefix}/{name}", owner)
            if record is None:
                continue
            await self.refs(flow, record.artifacts, owner)
            if record.split_digest:
                await self.blob(flow, record.split_digest, None, f"the foreach items of {owner}")
            if record.parents_manifest:
                await self.blob(flow, record.parents_manifest, None, f"the inputs list of {owner}")

    async def data(self, flow: str) -> None:
        """Every blob under the flow's data/: each file's name is its content's SHA-256."""
        for shard in await self.store.list(f"{flow}/data"):
            for digest in await self.store.list(f"{flow}/data/{shard}"):
                if len(digest) == 64:
                    await self.blob(flow, digest, None, "a stored blob")


def _run_ids(names: list[str]) -> list[str]:
    return [n for n in names if n != "data" and "." not in n]


async def verify_store(
    store: ObjectStore,
    flow: str | None = None,
    run_id: str | None = None,
    quarantine: bool = False,
    say: Callable[[Finding], None] = lambda f: None,
) -> Report:
    """Check one run, one flow (its runs and every blob) or the whole store; `say` hears each
    finding as it is made."""
    walk = _Walk(store, quarantine, say)
    flows = [flow] if flow else [n for n in await store.list("") if n.isidentifier()]
    for name in flows:
        ids = [run_id] if run_id else _run_ids(await store.list(name))
        for rid in ids:
            await walk.run(name, rid)
        if not run_id:
            await walk.data(name)
    return walk.report
