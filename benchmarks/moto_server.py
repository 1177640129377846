"""moto's server (S3, CloudWatch Logs) for a benchmark: a process of its own on a free loopback
port, with a bucket made once it answers, stopped when the benchmark is done."""

from __future__ import annotations

import contextlib
import os
import socket
import subprocess
import time
from collections.abc import Iterator


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextlib.contextmanager
def moto_server(bucket: str) -> Iterator[str]:
    """The server's endpoint URL, `bucket` made on it."""
    import boto3

    port = free_port()
    server = subprocess.Popen(
        ["moto_server", "-H", "127.0.0.1", "-p", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    endpoint = f"http://127.0.0.1:{port}"
    try:
        client = boto3.client(
            "s3",
            endpoint_url=endpoint,
            region_name="us-east-1",
            aws_access_key_id="bench",
            aws_secret_access_key="bench",
        )
        for _ in range(50):  # until it answers
            try:
                client.create_bucket(Bucket=bucket)
                break
            except Exception:
                time.sleep(0.2)
        else:
            raise RuntimeError(f"moto_server did not answer on {endpoint}")
        yield endpoint
    finally:
        server.terminate()
        server.wait()


def s3_datastore_env(endpoint: str, bucket: str) -> dict[str, str]:
    """The environment a scheduler process needs to keep its runs in `bucket` on this moto."""
    return {
        **os.environ,
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_DEFAULT_REGION": "us-east-1",
        "AFLOW_S3_ENDPOINT_URL": endpoint,
        "AFLOW_DEFAULT_DATASTORE": "s3",
        "AFLOW_DATASTORE_SYSROOT_S3": f"s3://{bucket}/runs",
    }
