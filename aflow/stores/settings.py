"""Which datastore and where, as the environment says: read once per use into `StoreSettings`.

AFLOW_DEFAULT_DATASTORE picks the datastore when `--datastore` is not given; AFLOW_DATASTORE_ROOT is
the local store's folder; AFLOW_DATASTORE_SYSROOT_S3 / _AZURE / _GS are the cloud stores' roots.
Nothing here is read at import time, so a test or a caller that sets a variable is always heard.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field

# datastore name -> the variable holding its root
ROOT_VARIABLES = {
    "local": "AFLOW_DATASTORE_ROOT",
    "s3": "AFLOW_DATASTORE_SYSROOT_S3",
    "azure": "AFLOW_DATASTORE_SYSROOT_AZURE",
    "gs": "AFLOW_DATASTORE_SYSROOT_GS",
}


@dataclass(frozen=True)
class StoreSettings:
    default_datastore: str = "local"
    roots: Mapping[str, str] = field(default_factory=dict)  # datastore -> root, where set

    @classmethod
    def from_env(cls) -> StoreSettings:
        roots = {name: os.environ[var] for name, var in ROOT_VARIABLES.items() if os.environ.get(var)}
        return cls(os.environ.get("AFLOW_DEFAULT_DATASTORE") or "local", roots)

    def root(self, datastore: str) -> str | None:
        return self.roots.get(datastore)
