"""How a remote container starts, in as few bytes of job description as possible.

AWS Batch hands a job's command and environment to ECS as container overrides, at most 8,192
characters of JSON, and DescribeJobs repeats both for every array child. So the container's command
is a stub of a few hundred characters (`STUB`) that fetches the rest: the launch blob, which is
engine/bootstrap.py with the job's settings (where the datastore, code package and task specs are,
the presigned URLs of the code package and environment lock, what to pip-install) prefixed as
`AFLOW_SETTINGS = {...}`. It is stored content-addressed and reached through one presigned URL
(AFLOW_BOOT_URL, checked against AFLOW_BOOT_SHA256), so the job's own environment holds that URL
and a few short names. When the datastore cannot presign, or the URL no longer works (temporary
credentials expired during a long queue wait), an image with aflow installed reads the blob
through the datastore with the container's own credentials.

The task specs of a job are one blob too, with a table of offsets in front, so a child of a
10,000-way array reads 16 bytes of table and its own spec: O(1) per child, whatever the width.
"""

from __future__ import annotations

import json
import struct
from collections.abc import Sequence
from pathlib import Path

from aflow.stores.base import BlockingObjectStore

# Kept short: it is in every job description. Standard library only, Python 3.6+ syntax, so an
# old image's python3 still gets far enough to say what it lacks (the bootstrap checks versions).
STUB = (
    "import os,sys,time,hashlib,urllib.request as r\n"
    "e=os.environ;u=e.get('AFLOW_BOOT_URL');b=None\n"
    "for i in range(7 if u else 0):\n"
    " try:b=r.urlopen(u,timeout=60).read();break\n"
    " except Exception as x:\n"
    "  print('[aflow] fetching the bootstrap: %s'%x,file=sys.stderr);time.sleep(min(2**i,30))\n"
    "if b is None:\n"
    " try:from aflow.stores.factory import open_blocking_store as o\n"
    " except ImportError:sys.exit('[aflow] no bootstrap: its URL failed and the image has no aflow')\n"
    " b=bytes(o(e['AFLOW_DATASTORE'],e['AFLOW_DATASTORE_ROOT']).get(e['AFLOW_BOOT_KEY']))\n"
    "if hashlib.sha256(b).hexdigest()!=e['AFLOW_BOOT_SHA256']:sys.exit('[aflow] bad bootstrap')\n"
    "exec(compile(b,'aflow-bootstrap','exec'))\n"
)
# What stays in the job's own environment; everything else travels in the launch blob.
BOOT_ENV = (
    "AFLOW_DATASTORE", "AFLOW_DATASTORE_ROOT", "AFLOW_S3_ENDPOINT_URL", "AFLOW_TASK_INDEX",
    "PYTHONUNBUFFERED",
)  # fmt: skip

_MAGIC = b"AFSPECS1"
_OFFSET = struct.Struct("<Q")


def bootstrap_command() -> list[str]:
    """The container's command: the stub, whose only needs are python3 and its stdlib."""
    return ["python3", "-c", STUB]


def launch_blob(settings: dict[str, str]) -> bytes:
    """engine/bootstrap.py with the job's settings in front (the same bytes for the same
    settings, so a retry of the same job reuses the blob)."""
    source = (Path(__file__).parent.parent / "engine" / "bootstrap.py").read_text()
    head = f"AFLOW_SETTINGS = {json.dumps(settings, sort_keys=True)}\n"
    return (head + source).encode()


def pack_specs(specs: Sequence[bytes]) -> bytes:
    """Packed specs behind a table of offsets: magic, count, count+1 offsets, then the specs."""
    offsets, position = [], 0
    for spec in specs:
        offsets.append(position)
        position += len(spec)
    offsets.append(position)
    table = b"".join(_OFFSET.pack(o) for o in offsets)
    return b"".join([_MAGIC, _OFFSET.pack(len(specs)), table, *specs])


def read_spec(store: BlockingObjectStore, key: str, index: int, count: int) -> bytes:
    """Spec `index` of a blob made by pack_specs, read with two ranged GETs."""
    if not 0 <= index < count:
        raise IndexError(f"task index {index} is outside this job's {count} tasks")
    head = len(_MAGIC) + _OFFSET.size
    pair = store.get_range(key, head + index * _OFFSET.size, 2 * _OFFSET.size)
    start, end = _OFFSET.unpack_from(pair, 0)[0], _OFFSET.unpack_from(pair, _OFFSET.size)[0]
    data_start = head + (count + 1) * _OFFSET.size
    return store.get_range(key, data_start + start, end - start)
