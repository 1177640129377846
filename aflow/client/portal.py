"""One background event loop thread that runs the client's async core for its synchronous classes.

The sync classes in `aflow.client` call `call(fn, ...)`, which runs the coroutine on this loop and
waits for it. Because the loop is its own thread, the sync API also works from code that is itself
inside an event loop (a notebook, a web handler). Nothing here knows about runs or stores.
"""

from __future__ import annotations

import atexit
import contextlib
import functools
import threading
from collections.abc import Callable, Coroutine
from typing import Any, ParamSpec, TypeVar

from anyio.from_thread import BlockingPortal

from aflow.stores.portal import background_portal

T = TypeVar("T")
P = ParamSpec("P")
_portal: BlockingPortal | None = None
_lock = threading.Lock()


def _close_at_exit() -> None:
    from aflow.client.core import close_client_stores

    if _portal is not None:
        with contextlib.suppress(Exception):
            _portal.call(close_client_stores)


def call(fn: Callable[P, Coroutine[Any, Any, T]], *args: P.args, **kwargs: P.kwargs) -> T:
    """Run `await fn(*args, **kwargs)` on the client's loop thread and return its result."""
    global _portal
    with _lock:
        if _portal is None:
            _portal = background_portal("aflow-client")
            atexit.register(_close_at_exit)  # cloud clients closed on the loop that made them
    result: T = _portal.call(functools.partial(fn, *args, **kwargs))
    return result
