"""An HTTP proxy in front of moto's S3: it can answer every other request with 503 SlowDown (as
throttled S3 does) or a dropped connection, so clients' retries are exercised over the wire
(the `throttled_s3_endpoint` fixture), and it can hold each request for a while, as a real
network's round trip would (benchmarks/s3_bench.py --latency-ms)."""

from __future__ import annotations

import contextlib
import http.client
import http.server
import itertools
import threading
import time
from collections.abc import Iterator
from urllib.parse import urlsplit

import pytest

SLOW_DOWN = (
    b'<?xml version="1.0" encoding="UTF-8"?><Error><Code>SlowDown</Code>'
    b"<Message>Please reduce your request rate.</Message></Error>"
)


def _handler(upstream: str, counter: itertools.count, faults: list[str] | None, delay: float) -> type:
    host = urlsplit(upstream)

    class Proxy(http.server.BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, *args: object) -> None:
            pass

        def _relay(self) -> None:
            body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
            if delay:
                time.sleep(delay)
            n = next(counter)
            if faults is not None and n % 2 == 0:  # every other one refused, the faults in turn
                if (n // 2) % 2 == 0:
                    faults.append("503")
                    self.send_response(503)
                    self.send_header("Content-Type", "application/xml")
                    self.send_header("Content-Length", str(len(SLOW_DOWN)))
                    self.end_headers()
                    self.wfile.write(SLOW_DOWN)
                else:
                    faults.append("reset")
                    self.close_connection = True
                    self.connection.close()
                return
            conn = http.client.HTTPConnection(host.hostname, host.port, timeout=30)
            headers = {k: v for k, v in self.headers.items() if k.lower() != "host"}
            headers["Host"] = f"{host.hostname}:{host.port}"
            conn.request(self.command, self.path, body=body, headers=headers)
            reply = conn.getresponse()
            data = reply.read()
            self.send_response(reply.status)
            for key, value in reply.getheaders():
                if key.lower() not in ("transfer-encoding", "connection", "content-length"):
                    self.send_header(key, value)
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            if self.command != "HEAD":
                self.wfile.write(data)
            conn.close()

        do_GET = do_PUT = do_POST = do_HEAD = do_DELETE = _relay

    return Proxy


@contextlib.contextmanager
def proxy(upstream: str, faults: list[str] | None = None, delay: float = 0.0) -> Iterator[str]:
    """Serve the proxy on a free loopback port for the length of the block; yields its URL.
    With a `faults` list, every other request fails (and is noted there)."""
    server = http.server.ThreadingHTTPServer(
        ("127.0.0.1", 0), _handler(upstream, itertools.count(), faults, delay)
    )
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


@pytest.fixture
def throttled_s3_endpoint(moto_s3_endpoint: str) -> Iterator[tuple[str, list[str]]]:
    """(endpoint URL, the faults it has injected so far)."""
    faults: list[str] = []
    with proxy(moto_s3_endpoint, faults) as url:
        yield url, faults
