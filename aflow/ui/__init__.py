"""`aflow ui`: a local, read-only web view of the runs in a store, updated live.

The package is a thin layer over the client's async core (`aflow.client.core`): `reader` reads the
store (and only reads it), `progress` works out each step's state, `dag` and `gantt` draw pictures as
SVG on the server, `preview` summarises artifact values, `pages` renders HTML, and `server` is the
Starlette app that serves the pages and streams their changes (server-sent events). Everything the
browser gets ships in `static/`: no CDN. The engine never imports this package.
"""

from __future__ import annotations

DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 8324
