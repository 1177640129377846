"""Saving Python values as artifacts from async code: serialised in a worker thread, each blob
stored once (skipped when the store has it), inline values kept in the returned refs.

The run's parameters are saved this way before its start task runs, and the in-process mock backend
saves the artifacts its handler gives a task the same way.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import anyio.to_thread

from aflow.stores import artifacts as art
from aflow.stores.base import ObjectStore


async def save_values(
    store: ObjectStore, flow: str, values: Mapping[str, Any]
) -> dict[str, art.ArtifactRef]:
    """name -> artifact ref for each value, its blob written to `store` unless it lives inline."""

    def serialize() -> dict[str, art.Serialized]:
        return {name: art.serialize(value, name) for name, value in values.items()}

    serialized = await anyio.to_thread.run_sync(serialize)
    for s in serialized.values():
        if not s.inline:
            await art.put_blob_async(store, art.blob_key(flow, s.digest), s.parts, s.digest, s.size)
    return {name: s.ref() for name, s in serialized.items()}
