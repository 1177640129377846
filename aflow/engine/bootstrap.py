"""The first thing a remote task's container runs (as `python3 -c <this file>`): standard library only.

It fetches the run's code package (from a presigned URL, or through aflow's own store when the
image has aflow installed), checks its hash, unpacks it, pip-installs the dependencies the image
lacks (or, for a step with @pypi/@conda, makes its environment from the stored lock, once per
AFLOW_ENV_CACHE), and replaces itself with `python -m aflow.engine.task_runtime --remote`, which
finds its task in the store. The environment (see backends/remote.py) says where everything is.
"""

import hashlib
import importlib.util
import io
import os
import shutil
import subprocess
import sys
import tarfile
import time
import urllib.request


def fail(message):
    print(f"[aflow bootstrap] {message}", file=sys.stderr, flush=True)
    sys.exit(70)


def fetch(env, what):
    """The object AFLOW_<what>_KEY names, by its presigned AFLOW_<what>_URL if there is one."""
    url, key = env.get(f"AFLOW_{what}_URL"), env[f"AFLOW_{what}_KEY"]
    if not url:
        try:
            from aflow.stores.base import open_blocking_store
        except ImportError:
            fail(f"no AFLOW_{what}_URL and no aflow in the image to read the datastore with")
        store = open_blocking_store(env["AFLOW_DATASTORE"], env["AFLOW_DATASTORE_ROOT"])
        return bytes(store.get(key))
    for attempt in range(5):
        try:
            with urllib.request.urlopen(url, timeout=60) as response:
                return response.read()
        except OSError as e:
            if attempt == 4:
                fail(f"could not fetch {key}: {e}")
            time.sleep(2**attempt)


def run(args, what):
    done = subprocess.run(args, capture_output=True, text=True)
    if done.returncode:
        fail(f"{what} failed:\n{done.stderr or done.stdout}")


def interpreter(wanted):
    """The image's Python of the version the environment's lock was resolved for."""
    here = f"{sys.version_info[0]}.{sys.version_info[1]}"
    if not wanted or wanted == here:
        return sys.executable
    found = shutil.which(f"python{wanted}")
    if found is None:
        fail(f"the step's environment is for Python {wanted}; the image has {here}, no python{wanted}")
    return found


def environment(env):
    """The step's @pypi/@conda environment, made from its stored lock once per container cache;
    its interpreter."""
    folder = os.path.join(env.get("AFLOW_ENV_CACHE") or "/tmp/aflow-envs", env["AFLOW_ENV_KEY"])
    python = os.path.join(folder, "bin", "python")
    ready = os.path.join(folder, ".aflow-ready")
    if os.path.exists(ready):
        return python
    os.makedirs(os.path.dirname(folder), exist_ok=True)
    with open(folder + ".lock", "w") as guard:
        import fcntl

        fcntl.flock(guard, fcntl.LOCK_EX)
        if os.path.exists(ready):
            return python
        shutil.rmtree(folder, ignore_errors=True)
        lock = folder + ".txt"
        with open(lock, "wb") as f:
            f.write(fetch(env, "ENV_LOCK"))
        started = time.monotonic()
        base = interpreter(env.get("AFLOW_ENV_PYTHON"))
        pip = [sys.executable, "-m", "pip", "--disable-pip-version-check", "--python", python]
        if env.get("AFLOW_ENV_KIND") == "conda":
            tool = next(filter(None, map(shutil.which, ("micromamba", "mamba", "conda"))), None)
            if tool is None:
                fail("@conda: the image has no micromamba, mamba or conda")
            run([tool, "create", "-y", "-p", folder, "--file", lock], "conda create")
            needs = [p.split("=", 1)[1] for p in env.get("AFLOW_REQUIREMENTS", "").split(";") if p]
            run([*pip, "install", "-q", *needs], "pip install")
        else:
            run([base, "-m", "venv", "--without-pip", folder], "python -m venv")
            run([*pip, "install", "-q", "--no-deps", "-r", lock], "pip install")
        open(ready, "w").close()
        print(
            f"[aflow bootstrap] made environment {env['AFLOW_ENV_KEY']} in "
            f"{time.monotonic() - started:.1f} s",
            file=sys.stderr,
            flush=True,
        )
    return python


def importable(module):
    try:
        return importlib.util.find_spec(module) is not None
    except ImportError:  # "azure.storage.blob" without "azure"
        return False


def main():
    env = dict(os.environ)
    code_dir = os.path.abspath(env.get("AFLOW_CODE_DIR") or "aflow-code")
    data = fetch(env, "CODE")
    if hashlib.sha256(data).hexdigest() != env["AFLOW_CODE_SHA256"]:
        fail(f"the code package {env['AFLOW_CODE_KEY']} does not match its hash")
    os.makedirs(code_dir, exist_ok=True)
    with tarfile.open(fileobj=io.BytesIO(data), mode="r:gz") as tar:
        try:
            tar.extractall(code_dir, filter="data")
        except TypeError:  # Python before 3.11.4 has no filters; the package is our own
            tar.extractall(code_dir)
    python, paths = sys.executable, [code_dir]
    if env.get("AFLOW_ENV_KEY"):
        python = environment(env)  # it holds what aflow needs too: its lock has it
    else:
        pairs = [p.split("=", 1) for p in env.get("AFLOW_REQUIREMENTS", "").split(";") if "=" in p]
        missing = [req for module, req in pairs if not importable(module)]
        if missing:
            # Into a folder of our own: an image's system Python may refuse pip (PEP 668), and
            # the container may not run as root.
            print(f"[aflow bootstrap] installing {' '.join(missing)}", file=sys.stderr, flush=True)
            target = os.path.join(code_dir, ".aflow-deps")
            run([sys.executable, "-m", "pip", "install", "-q", "--target", target, *missing], "pip")
            paths.append(target)
    env["AFLOW_CODE_DIR"] = code_dir
    env["PYTHONPATH"] = os.pathsep.join(p for p in (*paths, env.get("PYTHONPATH")) if p)
    argv = [python, "-u", "-m", "aflow.engine.task_runtime", "--remote"]
    os.execve(python, argv, env)


if __name__ == "__main__":  # as `python3 -c`; importing this module runs nothing
    main()
