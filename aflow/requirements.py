"""aflow's own requirements as a task process needs them, read from its installed metadata (or the
checkout's pyproject): what a container pip-installs when its image lacks a module, and what a step's
@pypi/@conda environment pins besides the user's packages. Used by the remote backends and by the
environments alike, so neither imports the other for it.
"""

from __future__ import annotations

import re

from aflow.install_hint import declared_requirements
from aflow.stores.factory import REMOTE

# Distributions whose import name is not their name; ones a task never imports.
_MODULES = {
    "azure-storage-blob": "azure.storage.blob",
    "gcloud-aio-storage": "gcloud.aio.storage",
    "markdown-it-py": "markdown_it",  # not markdown_it_py: every container installed it again
}
_NOT_IN_TASKS = {"typer", "aiofiles"}


def dist_name(requirement: str) -> str:
    """The distribution a requirement names: "aioboto3" of "aioboto3[s3]>=13"."""
    return re.split(r"[\s\[<>=!~;]", requirement.strip(), maxsplit=1)[0]


def requirements_for(datastore: str) -> str:
    """`module=requirement` pairs (`;`-separated) a container needs to run a task: aflow's own
    dependencies and its datastore's extra, read from aflow's installed metadata. The bootstrap
    pip-installs those whose module the image lacks."""
    extra = REMOTE[datastore].extra if datastore in REMOTE else None
    pairs = []
    for requirement in declared_requirements():
        spec, _, marker = (part.strip() for part in requirement.partition(";"))
        wanted = re.search(r"""extra\s*==\s*["']([^"']+)["']""", marker)
        if (wanted.group(1) if wanted else None) not in (None, extra):
            continue
        dist = dist_name(spec)
        if dist not in _NOT_IN_TASKS:
            pairs.append(f"{_MODULES.get(dist, dist.replace('-', '_'))}={spec}")
    return ";".join(sorted(pairs))
