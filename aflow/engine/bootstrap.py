"""The first thing a remote task's container runs (as `python3 -c <this file>`): standard library only.

It fetches the run's code package (from a presigned URL, or through aflow's own store when the
image has aflow installed), checks its hash, unpacks it, pip-installs the dependencies the image
lacks, and replaces itself with `python -m aflow.engine.task_runtime --remote`, which finds its task
in the store. The environment (see backends/remote.py) says where everything is.
"""

import hashlib
import importlib.util
import io
import os
import subprocess
import sys
import tarfile
import time
import urllib.request


def fail(message):
    print(f"[aflow bootstrap] {message}", file=sys.stderr, flush=True)
    sys.exit(70)


def fetch(env):
    url = env.get("AFLOW_CODE_URL")
    if not url:
        try:
            from aflow.stores.base import open_blocking_store
        except ImportError:
            fail("no AFLOW_CODE_URL and no aflow in the image to read the datastore with")
        store = open_blocking_store(env["AFLOW_DATASTORE"], env["AFLOW_DATASTORE_ROOT"])
        return bytes(store.get(env["AFLOW_CODE_KEY"]))
    for attempt in range(5):
        try:
            with urllib.request.urlopen(url, timeout=60) as response:
                return response.read()
        except OSError as e:
            if attempt == 4:
                fail(f"could not fetch the code package {env['AFLOW_CODE_KEY']}: {e}")
            time.sleep(2**attempt)


def main():
    env = dict(os.environ)
    code_dir = os.path.abspath(env.get("AFLOW_CODE_DIR") or "aflow-code")
    data = fetch(env)
    if hashlib.sha256(data).hexdigest() != env["AFLOW_CODE_SHA256"]:
        fail(f"the code package {env['AFLOW_CODE_KEY']} does not match its hash")
    os.makedirs(code_dir, exist_ok=True)
    with tarfile.open(fileobj=io.BytesIO(data), mode="r:gz") as tar:
        tar.extractall(code_dir, filter="data")
    pairs = [p.split("=", 1) for p in env.get("AFLOW_REQUIREMENTS", "").split(";") if "=" in p]
    missing = [req for module, req in pairs if importlib.util.find_spec(module) is None]
    if missing:
        print(f"[aflow bootstrap] installing {' '.join(missing)}", file=sys.stderr, flush=True)
        subprocess.check_call([sys.executable, "-m", "pip", "install", "--quiet", *missing])
    env["AFLOW_CODE_DIR"] = code_dir
    env["PYTHONPATH"] = os.pathsep.join(p for p in (code_dir, env.get("PYTHONPATH")) if p)
    argv = [sys.executable, "-u", "-m", "aflow.engine.task_runtime", "--remote"]
    os.execve(sys.executable, argv, env)


if __name__ == "__main__":  # as `python3 -c`; importing this module runs nothing
    main()
