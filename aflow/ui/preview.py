"""A short, safe-to-show summary of an artifact's value: its type and a few lines of preview.

numpy arrays show shape and dtype before a clipped print; pandas frames and series their shape and
head; anything else a `reprlib` repr, clipped, so a million-item list previews in a line. Values are
loaded by the caller (in a worker thread) and only when small enough (`PREVIEW_LIMIT`), since
loading a 2 GB artifact to show one line is not worth it; a larger one is previewed when asked.
"""

from __future__ import annotations

import reprlib
from dataclasses import dataclass
from typing import Any

PREVIEW_LIMIT = 32 << 20
MAX_CHARS = 1200

_repr = reprlib.Repr()
_repr.maxstring = 160
_repr.maxother = 160
_repr.maxlist = _repr.maxtuple = _repr.maxset = _repr.maxfrozenset = _repr.maxdeque = 12
_repr.maxdict = 10
_repr.maxlevel = 3


@dataclass(frozen=True)
class Preview:
    type: str
    text: str


def type_name(value: Any) -> str:
    cls = type(value)
    module = cls.__module__
    return cls.__qualname__ if module == "builtins" else f"{module}.{cls.__qualname__}"


def describe(value: Any) -> Preview:
    """The value's type and preview text (never raises: a failing repr is reported as such)."""
    kind = type_name(value)
    try:
        text = _numpy(value) or _pandas(value) or _repr.repr(value)
    except Exception as e:
        text = f"(no preview: {type(e).__name__}: {e})"
    if len(text) > MAX_CHARS:
        text = text[:MAX_CHARS] + "…"
    return Preview(kind, text)


def _numpy(value: Any) -> str | None:
    if not type(value).__module__.startswith("numpy") or not hasattr(value, "dtype"):
        return None
    import numpy as np

    shape = getattr(value, "shape", ())
    with np.printoptions(threshold=24, edgeitems=3, linewidth=96, precision=5):
        body = np.array2string(np.asarray(value)) if shape else repr(value)
    return f"shape {tuple(shape)}  dtype {value.dtype}\n{body}"


def _pandas(value: Any) -> str | None:
    module = type(value).__module__
    if not module.startswith("pandas") or not hasattr(value, "head"):
        return None
    head = value.head(5)
    if hasattr(value, "columns"):
        rows, cols = value.shape
        body = head.to_string(max_cols=10, max_colwidth=24)
        return f"{rows:,} rows \N{MULTIPLICATION SIGN} {cols} columns\n{body}"
    body = head.to_string(max_rows=5)
    return f"{len(value):,} values  dtype {value.dtype}\n{body}"
