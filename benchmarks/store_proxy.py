"""A counting reverse proxy in front of the S3 endpoint (moto) for a benchmark: the containers talk
to the datastore through it, the scheduler does not, so what it counts is what the tasks read and
wrote. It runs on its own event loop in a thread of whichever process starts it (the emulator's,
so that its CPU is not the scheduler's)."""

from __future__ import annotations

import asyncio
import threading
from dataclasses import dataclass, field

import aiohttp
from aiohttp import web

HOP = {"host", "content-length", "transfer-encoding", "connection", "keep-alive"}


@dataclass
class Counts:
    gets: int = 0
    bytes_read: int = 0  # response bodies of GETs
    puts: int = 0
    bytes_written: int = 0  # request bodies of PUTs and POSTs
    by_kind: dict[str, int] = field(default_factory=dict)  # bytes read: ranged / whole GETs


def kind_of(request: web.Request) -> str:
    """Ranged GETs are a task reading its own part of a shared blob (its spec from its group's
    specs, its item from the foreach's items); whole GETs are blobs and records it reads."""
    return "ranged" if "Range" in request.headers else "whole"


class StoreProxy:
    def __init__(self, upstream: str) -> None:
        self.upstream = upstream.rstrip("/")
        self.counts = Counts()
        self.url = ""
        ready = threading.Event()
        self._loop = asyncio.new_event_loop()
        threading.Thread(target=self._serve, args=(ready,), daemon=True).start()
        ready.wait(30)

    def _serve(self, ready: threading.Event) -> None:
        asyncio.set_event_loop(self._loop)
        self._loop.run_until_complete(self._start())
        ready.set()
        self._loop.run_forever()

    async def _start(self) -> None:
        self._session = aiohttp.ClientSession(auto_decompress=False)
        app = web.Application(client_max_size=1 << 30)
        app.router.add_route("*", "/{tail:.*}", self._forward)
        runner = web.AppRunner(app, access_log=None)
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        self.url = f"http://127.0.0.1:{runner.addresses[0][1]}"

    async def _forward(self, request: web.Request) -> web.Response:
        body = await request.read()
        headers = {k: v for k, v in request.headers.items() if k.lower() not in HOP}
        async with self._session.request(
            request.method, self.upstream + request.path_qs, headers=headers, data=body
        ) as resp:
            data = await resp.read()
            out_headers = {k: v for k, v in resp.headers.items() if k.lower() not in HOP}
        c = self.counts
        if request.method == "GET":
            c.gets += 1
            c.bytes_read += len(data)
            kind = kind_of(request)
            c.by_kind[kind] = c.by_kind.get(kind, 0) + len(data)
        elif request.method in ("PUT", "POST"):
            c.puts += 1
            c.bytes_written += len(body)
        return web.Response(body=data, status=resp.status, headers=out_headers)
