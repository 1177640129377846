"""`aflow ui`: serve the web view of a store's runs (aflow.ui) with uvicorn, on loopback by default.

The socket is bound here, before the server starts, so a taken port is one clear line and `--port 0`
prints the port it got. Binding anywhere but loopback shows every run's data, logs and artifacts to
whoever can reach the machine, so it takes `--allow-remote` and prints a warning. Starlette and
uvicorn come with the `ui` extra and are imported only when the command runs. The app answers only
requests whose Host is a loopback name, the bound `--host` or an `--allow-host` name (DNS rebinding:
see aflow.ui.guard).
"""

from __future__ import annotations

import errno
import ipaddress
import socket
import sys
from typing import Annotated

import typer

from aflow.cli.common import app, guarded
from aflow.cli.options import Datastore, DatastoreRoot
from aflow.cli.reading import flow_of
from aflow.exception import AflowException
from aflow.ui import DEFAULT_HOST, DEFAULT_PORT


class UIError(AflowException):
    headline = "aflow ui"


@app.command(
    help=f"Serve a live web view of the runs in the store, at http://{DEFAULT_HOST}:{DEFAULT_PORT}."
)
def ui(
    target: Annotated[
        str | None,
        typer.Argument(metavar="FLOW", help="Open on this flow's runs: its file or its name."),
    ] = None,
    port: Annotated[int, typer.Option(help="The port (0: any free one).")] = DEFAULT_PORT,
    host: Annotated[
        str, typer.Option(help="The address to bind; anything but loopback needs --allow-remote.")
    ] = DEFAULT_HOST,
    allow_remote: Annotated[
        bool,
        typer.Option(
            "--allow-remote",
            help="Allow a non-loopback --host: anyone who can reach it reads every run's data.",
        ),
    ] = False,
    allow_host: Annotated[
        list[str] | None,
        typer.Option(
            "--allow-host",
            metavar="NAME",
            help="Also answer requests addressed to this host name (e.g. the machine's DNS name "
            "with --host 0.0.0.0); repeatable. Loopback names and --host are always answered.",
        ),
    ] = None,
    poll: Annotated[
        float, typer.Option(help="Seconds between re-reads of the store for live pages.")
    ] = 1.0,
    datastore: Datastore = None,
    datastore_root: DatastoreRoot = None,
) -> None:
    def go() -> None:
        try:
            import uvicorn

            from aflow.ui.guard import host_names
            from aflow.ui.server import create_app
        except ImportError as e:
            from aflow.install_hint import needs_extra

            raise UIError(f"{needs_extra('aflow ui', 'ui')} ({e})") from None
        from aflow.stores.factory import open_store

        if not _is_loopback(host):
            if not allow_remote:
                raise UIError(
                    f"--host {host} is not a loopback address: anyone who can reach it could read "
                    "every run's data, logs and artifacts. Pass --allow-remote to serve it anyway."
                )
            typer.echo(
                f"warning: serving on {host}: anyone who can reach this address reads every run's "
                "data, logs and artifacts (aflow ui has no login)",
                err=True,
            )
        # `python flow.py ui` names its flow: the printed address opens on that flow's runs.
        start = f"?flow={flow_of(target)[0]}" if target else ""
        store = open_store(datastore, datastore_root)
        sock = _bind(host, port)
        shown = f"[{host}]" if ":" in host else host
        where = f"http://{shown}:{sock.getsockname()[1]}/{start}"
        typer.echo(f"aflow ui: {store.url} at {where} (Ctrl-C stops)")
        sys.stdout.flush()
        config = uvicorn.Config(
            create_app(store, poll=poll, hosts=host_names(host, allow_host or ())),
            log_level="warning",
            timeout_graceful_shutdown=1,  # live pages hold streams open: do not wait on them
        )
        uvicorn.Server(config).run(sockets=[sock])

    guarded(go)


def _is_loopback(host: str) -> bool:
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        pass
    try:
        found = socket.getaddrinfo(host, None)
    except OSError:
        return False
    return bool(found) and all(ipaddress.ip_address(f[4][0]).is_loopback for f in found)


def _bind(host: str, port: int) -> socket.socket:
    family = socket.AF_INET6 if ":" in host.strip("[]") else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host.strip("[]"), port))
    except OSError as e:
        sock.close()
        if e.errno == errno.EADDRINUSE:
            raise UIError(f"port {port} is in use: pass --port N (--port 0: any free port)") from None
        raise UIError(f"cannot listen on {host}:{port}: {e.strerror or e}") from None
    sock.listen(128)
    sock.set_inheritable(True)
    return sock
