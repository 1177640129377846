"""Metaflow's S3 client for step code: `from aflow import S3` (needs `aflow[aws]`).

`S3` is synchronous (for steps); `AsyncS3` is the same API as coroutines (for async code). Both move
data through the S3 datastore's concurrent multipart/ranged transfer.
"""

from aflow.s3.client import S3
from aflow.s3.core import AsyncS3
from aflow.s3.objects import (
    MetaflowS3AccessDenied,
    MetaflowS3Exception,
    MetaflowS3InvalidObject,
    MetaflowS3InvalidRange,
    MetaflowS3NotFound,
    MetaflowS3URLException,
    RangeInfo,
    S3GetObject,
    S3Object,
    S3PutObject,
)

__all__ = [
    "S3",
    "AsyncS3",
    "MetaflowS3AccessDenied",
    "MetaflowS3Exception",
    "MetaflowS3InvalidObject",
    "MetaflowS3InvalidRange",
    "MetaflowS3NotFound",
    "MetaflowS3URLException",
    "RangeInfo",
    "S3GetObject",
    "S3Object",
    "S3PutObject",
]
