"""Changing a run's tags after it started: `run.add_tag`, `remove_tag`, `replace_tag` (also from
inside one of its steps), as Metaflow has them.

The user tags live in the run record, which the run's scheduler rewrites while the run goes (its
heartbeat); so a change goes first to a small file beside the record, `tags.mpk`, which the
scheduler folds into every record it writes, and straight into the record too once the run has
ended (checked again after the change, should the run have ended meanwhile). A running run's
tags are read from that file; an ended run's from its record, so listings read nothing more.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING

import msgpack

from aflow.exception import AflowException
from aflow.stores.base import NotFound, ObjectStore
from aflow.stores.records import RunRecord, run_record_key

if TYPE_CHECKING:
    from aflow.client.core import AsyncRun

MAX_TAG_LENGTH = 512


def tags_key(flow: str, run_id: str) -> str:
    return f"{flow}/{run_id}/tags.mpk"


async def changed_tags(store: ObjectStore, flow: str, run_id: str) -> list[str] | None:
    """The user tags as last changed through the client, or None if they never were."""
    try:
        data = await store.get(tags_key(flow, run_id))
    except NotFound:
        return None
    return list(msgpack.unpackb(bytes(data), raw=False))


def _check(tags: Iterable[str]) -> list[str]:
    out = list(tags)
    for tag in out:
        if not isinstance(tag, str) or not tag.strip():
            raise AflowException(f"tag {tag!r}: a tag is a non-empty string")
        if len(tag) > MAX_TAG_LENGTH:
            raise AflowException(f"tag {tag[:40]!r}...: a tag has at most {MAX_TAG_LENGTH} characters")
    return out


async def change_tags(run: AsyncRun, add: Iterable[str] = (), remove: Iterable[str] = ()) -> None:
    """Add and remove user tags of a run, in one change (what replace_tag is)."""
    from aflow.client.core import system_tags

    add, remove = _check(add), _check(remove)
    record = await run.record(refresh=True)
    system = system_tags(record)
    for tag in remove:
        if tag in system:
            raise AflowException(f"tag '{tag}' is a system tag of {run.pathspec}: it cannot be removed")
    current = await changed_tags(run.store, run.flow, run.id)
    tags = list(record.tags if current is None else current)
    tags = [t for t in tags if t not in remove]
    tags += [t for t in dict.fromkeys(add) if t not in tags and t not in system]
    await run.store.put(tags_key(run.flow, run.id), [msgpack.packb(tags)])
    if record.status == "running":
        # The scheduler folds the change into the record it writes next; if the run ended
        # meanwhile (its last write may have missed this change), write it into the record here.
        record = await run.record(refresh=True)
    if record.status != "running":
        record.tags = tags
        await run.store.put(run_record_key(run.flow, run.id), [record.pack()])
    run._record = record
    record.tags = tags


async def fold_changed_tags(store: ObjectStore, record: RunRecord) -> None:
    """For the scheduler: take tag changes made while the run goes into the record it writes."""
    try:
        changed = await changed_tags(store, record.flow, record.run_id)
    except Exception:
        return  # an unreadable change is not worth failing a run for
    if changed is not None:
        record.tags = changed
