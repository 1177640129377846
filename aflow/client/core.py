"""The async core of the client API: runs, steps, tasks and artifacts read straight from the store.

Reads are lazy: a Run reads its record, a Task its record, and an artifact's blob is fetched only
when that artifact is asked for. Deserialising runs in a worker thread, never on the event loop.
`aflow.client` wraps these in the synchronous classes users know from Metaflow.
"""

from __future__ import annotations

from typing import Any

import anyio.to_thread

from aflow.exception import AflowNotFound
from aflow.stores import artifacts as art
from aflow.stores.base import NotFound, ObjectStore
from aflow.stores.records import RunRecord, TaskRecord, run_record_key, task_prefix


class AsyncTask:
    def __init__(self, store: ObjectStore, flow: str, run_id: str, step: str, task_id: str) -> None:
        self.store = store
        self.flow = flow
        self.run_id = run_id
        self.step = step
        self.id = task_id
        self._record: TaskRecord | None = None

    @property
    def pathspec(self) -> str:
        return f"{self.flow}/{self.run_id}/{self.step}/{self.id}"

    async def record(self) -> TaskRecord:
        """The latest attempt's record."""
        if self._record is None:
            prefix = task_prefix(self.flow, self.run_id, self.step, self.id)
            attempts = [int(n[:-4]) for n in await self.store.list(prefix) if n.endswith(".mpk")]
            if not attempts:
                raise AflowNotFound(f"task {self.pathspec} has no record in {self.store.url}")
            data = await self.store.get(f"{prefix}/{max(attempts)}.mpk")
            self._record = TaskRecord.unpack(data)
        return self._record

    async def artifact_names(self) -> list[str]:
        return sorted((await self.record()).artifacts)

    async def artifact(self, name: str) -> Any:
        ref = (await self.record()).artifacts.get(name)
        if ref is None:
            raise AttributeError(f"task {self.pathspec} has no artifact '{name}'")
        if "v" in ref:
            blob = ref["v"]
        else:
            try:
                blob = await self.store.get(art.blob_key(self.flow, ref["k"]))
            except NotFound:
                raise AflowNotFound(
                    f"artifact '{name}' of {self.pathspec} is missing from {self.store.url}"
                ) from None
        return await anyio.to_thread.run_sync(art.deserialize, blob)


class AsyncRun:
    def __init__(
        self, store: ObjectStore, flow: str, run_id: str, record: RunRecord | None = None
    ) -> None:
        self.store = store
        self.flow = flow
        self.id = run_id
        self._record = record

    @property
    def pathspec(self) -> str:
        return f"{self.flow}/{self.id}"

    async def record(self, refresh: bool = False) -> RunRecord:
        if self._record is None or refresh:
            try:
                data = await self.store.get(run_record_key(self.flow, self.id))
            except NotFound:
                raise AflowNotFound(f"no run {self.pathspec} in {self.store.url}") from None
            self._record = RunRecord.unpack(data)
        return self._record

    async def task_ids(self, step: str) -> list[str]:
        names = await self.store.list(f"{self.flow}/{self.id}/{step}")
        return sorted(names, key=lambda n: (len(n), n))

    def task(self, step: str, task_id: str) -> AsyncTask:
        return AsyncTask(self.store, self.flow, self.id, step, task_id)

    async def end_task(self) -> AsyncTask | None:
        record = await self.record()
        if record.end_task:
            _flow, _run, step, task_id = record.end_task.split("/")
            return self.task(step, task_id)
        return None
