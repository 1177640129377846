"""What every request passes before a page sees it: a Host check, path shapes, and safety headers.

The UI reads a store on the user's behalf and previews artifacts by unpickling them, so a request must
never name anything outside the runs it lists, and no other web site may use the user's browser to
read it:

- Host: only the names the server is reached by (loopback names, the bound `--host`, `--allow-host`
  names) are answered. A page on another site that rebinds its own name to 127.0.0.1 still sends its
  own name as Host, so it gets a 400 (DNS rebinding). An IP address as Host cannot be rebound, so a
  server bound to every interface (0.0.0.0) also answers any IP literal.
- Paths: every segment is decoded once and must not decode to `.`, `..`, a slash, a backslash, a `%`
  (a double-encoded segment), NUL or another control character; the segments of a page's route must
  have the shape the engine gives flow names and steps (Python identifiers) and run and task ids
  (letters, digits, `_` and `-`). Anything else is a 400 before any store is read.
- Headers: a Content-Security-Policy allowing scripts, styles and connections only from the UI itself
  and no framing, `nosniff`, and no referrer.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Iterable
from urllib.parse import unquote

from starlette.types import ASGIApp, Message, Receive, Scope, Send

NAME = re.compile(r"[^\W\d]\w{0,254}")  # a flow or step: a Python identifier
ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9_-]{0,127}")  # a run or task id
# Each page's route after its first segment (a `/live` prefix is the same page's stream).
ROUTES: dict[str, tuple[tuple[str, re.Pattern[str]], ...]] = {
    "run": (("flow name", NAME), ("run id", ID)),
    "task": (("flow name", NAME), ("run id", ID), ("step name", NAME), ("task id", ID)),
    "raw": (("flow name", NAME), ("run id", ID), ("step name", NAME), ("task id", ID)),
    "grid": (("flow name", NAME),),
    "compare": (("flow name", NAME), ("run id", ID), ("run id", ID)),
}
LOOPBACK_NAMES = ("127.0.0.1", "localhost", "::1")
CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "connect-src 'self'; object-src 'none'; base-uri 'none'; form-action 'self'; "
    "frame-ancestors 'none'"
)
HEADERS = [
    (b"content-security-policy", CSP.encode()),
    (b"x-content-type-options", b"nosniff"),
    (b"x-frame-options", b"DENY"),
    (b"referrer-policy", b"no-referrer"),
    (b"cross-origin-resource-policy", b"same-origin"),
]
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")


def host_names(bound: str | None = None, extra: Iterable[str] = ()) -> frozenset[str]:
    """The Host names to answer: loopback's, the bound host's and `extra` (normalised)."""
    names = {*LOOPBACK_NAMES, *extra}
    if bound:
        names.add(bound)
    return frozenset(_normal(n) for n in names if n)


def _normal(host: str) -> str:
    return host.strip().strip("[]").rstrip(".").lower()


def _wildcard(names: frozenset[str]) -> bool:
    return bool(names & {"0.0.0.0", "::", ""})


def host_of(header: str) -> str:
    """The name in a Host header, without its port (`[::1]:8324` -> `::1`)."""
    header = header.strip()
    if header.startswith("["):
        return _normal(header[: header.find("]") + 1]) if "]" in header else ""
    if header.count(":") == 1:
        header = header.split(":", 1)[0]
    return _normal(header)


def host_allowed(header: str, names: frozenset[str]) -> bool:
    host = host_of(header)
    if not host:
        return False
    if host in names:
        return True
    if _wildcard(names):
        try:
            ipaddress.ip_address(host)
        except ValueError:
            return False
        return True
    return False


def path_problem(raw_path: str) -> str | None:
    """Why a request path is refused (None: it is fine). `raw_path` is as sent, still encoded."""
    segments = raw_path.split("/")[1:]
    for raw in segments:
        seg = unquote(raw, errors="strict") if "%" in raw else raw
        if seg in (".", ".."):
            return "a path segment is '.' or '..'"
        if "/" in seg or "\\" in seg:
            return "a path segment holds an encoded slash or a backslash"
        if "%" in seg:
            return "a path segment is encoded twice"
        if _CONTROL.search(seg):
            return "a path segment holds a control character"
    decoded = [unquote(s) for s in segments]
    if decoded and decoded[0] == "live":
        decoded = decoded[1:]
    shapes = ROUTES.get(decoded[0] if decoded else "")
    if shapes is None:
        return None
    values = decoded[1:]
    if len(values) != len(shapes):
        return None  # not this page's route: the router answers 404
    for (what, shape), value in zip(shapes, values, strict=True):
        if not shape.fullmatch(value):
            return f"{value!r} is not a {what}"
    return None


class Guard:
    """ASGI middleware: refuses foreign Host headers and odd paths, adds the safety headers."""

    def __init__(self, app: ASGIApp, hosts: frozenset[str]) -> None:
        self.app = app
        self.hosts = hosts

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = dict(scope.get("headers") or [])
        host = headers.get(b"host", b"").decode("latin-1")
        problem = None
        if not host_allowed(host, self.hosts):
            problem = f"this server does not answer to the host name {host_of(host)!r}"
        else:
            raw = scope.get("raw_path") or scope["path"].encode()
            try:
                problem = path_problem(raw.decode("latin-1").split("?", 1)[0])
            except UnicodeDecodeError:
                problem = "a path segment is not UTF-8"
        if problem:
            await _refuse(send, problem)
            return

        async def with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                message = {**message, "headers": [*message.get("headers", []), *HEADERS]}
            await send(message)

        await self.app(scope, receive, with_headers)


async def _refuse(send: Send, problem: str) -> None:
    body = f"400 bad request: {problem}\n".encode()
    headers = [
        (b"content-type", b"text/plain; charset=utf-8"),
        (b"content-length", str(len(body)).encode()),
        *HEADERS,
    ]
    await send({"type": "http.response.start", "status": 400, "headers": headers})
    await send({"type": "http.response.body", "body": body})
