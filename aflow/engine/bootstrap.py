"""What a remote task's container runs first: standard library only, old-Python syntax.

The container's short command (backends/launch.py) fetches this file with the job's settings in
front (`AFLOW_SETTINGS`) and runs it. It checks the image's Python, fetches the run's code
package (from a presigned URL, or through aflow's own store when the image has aflow installed
and the URL is missing or expired), checks its hash, unpacks it, pip-installs the dependencies the image
lacks (or, for a step with @pypi/@conda, makes its environment from the stored lock, once per
AFLOW_ENV_CACHE), and replaces itself with `python -m aflow.engine.task_runtime --remote`, which
finds its task in the store. The settings (see backends/remote.py) say where everything is.

Real images: it works in a writable folder (the working directory, else the system's temporary
one: non-root users, read-only root filesystems) and turns SIGTERM into an exit when it runs as
PID 1 (where a signal without a handler is ignored).

Typed with type comments (checked by mypy --strict): annotations would not parse on the old
Pythons whose version it must still be able to report.
"""

import hashlib
import importlib.util
import io
import os
import shutil
import signal
import subprocess
import sys
import tarfile
import tempfile
import time
import typing  # noqa: F401  (NoReturn, in a type comment)
import urllib.request

# What the bootstrap said, handed on to the runtime, which saves it with the output.
NOTES = []  # type: list[str]


def note(message):
    # type: (str) -> None
    line = f"[aflow bootstrap] {message}"
    print(line, file=sys.stderr, flush=True)
    NOTES.append(line)


def fail(message):
    # type: (str) -> typing.NoReturn
    print(f"[aflow bootstrap] {message}", file=sys.stderr, flush=True)
    sys.exit(70)


def from_store(env, key, why):
    # type: (dict[str, str], str, str) -> bytes
    """An object read with the container's own credentials, through an aflow the image has."""
    try:
        from aflow.stores.factory import open_blocking_store
    except ImportError:
        fail(f"{why}, and the image has no aflow to read the datastore with ({key})")
    store = open_blocking_store(env["AFLOW_DATASTORE"], env["AFLOW_DATASTORE_ROOT"])
    return bytes(store.get(key))


def fetch(env, what):
    # type: (dict[str, str], str) -> bytes
    """The object AFLOW_<what>_KEY names, by its presigned AFLOW_<what>_URL if there is one (else,
    or when the URL has expired, through the datastore)."""
    url, key = env.get(f"AFLOW_{what}_URL"), env[f"AFLOW_{what}_KEY"]
    if not url:
        return from_store(env, key, f"no AFLOW_{what}_URL")
    for attempt in range(5):
        try:
            with urllib.request.urlopen(url, timeout=60) as response:
                data = response.read()  # type: bytes
                return data
        except OSError as e:
            expired = getattr(e, "code", None) in (400, 403)  # signed with credentials now gone
            if expired or attempt == 4:
                return from_store(env, key, f"its presigned URL failed ({e})")
            time.sleep(2**attempt)
    raise AssertionError("the last attempt returns")


def check_python(env):
    # type: (dict[str, str]) -> None
    """Say clearly when the image's Python is too old for aflow (its syntax would fail later)."""
    wanted = tuple(int(p) for p in (env.get("AFLOW_MIN_PYTHON") or "3.11").split("."))
    if sys.version_info[:2] < wanted:
        here = ".".join(map(str, sys.version_info[:3]))
        fail(
            f"the image's python3 is {here}; aflow needs {'.'.join(map(str, wanted))} or newer: "
            "use an image with a newer Python (@batch(image=...) / @kubernetes(image=...), "
            "AFLOW_BATCH_IMAGE, AFLOW_KUBERNETES_IMAGE or AFLOW_DEFAULT_IMAGE)"
        )


def writable_dir(wanted):
    # type: (str | None) -> str
    """A folder we can write: the one asked for, else under the working directory, else under
    the system's temporary folder (a read-only root filesystem, a non-root user)."""
    if wanted:
        os.makedirs(wanted, exist_ok=True)
        return os.path.abspath(wanted)
    for base in (os.getcwd(), tempfile.gettempdir()):
        try:
            return tempfile.mkdtemp(prefix="aflow-code-", dir=base)
        except OSError:
            continue
    fail("no writable folder: mount a writable volume and set TMPDIR to it")


def on_sigterm(signum, frame):
    # type: (int, object) -> None
    sys.exit(128 + signum)


def run(args, what):
    # type: (list[str], str) -> None
    done = subprocess.run(args, capture_output=True, text=True)
    if done.returncode:
        fail(f"{what} failed:\n{done.stderr or done.stdout}")


def interpreter(wanted):
    # type: (str | None) -> str
    """The image's Python of the version the environment's lock was resolved for."""
    here = f"{sys.version_info[0]}.{sys.version_info[1]}"
    if not wanted or wanted == here:
        return sys.executable
    found = shutil.which(f"python{wanted}")
    if found is None:
        fail(f"the step's environment is for Python {wanted}; the image has {here}, no python{wanted}")
    return found


def environment(env):
    # type: (dict[str, str]) -> str
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
        note(f"made environment {env['AFLOW_ENV_KEY']} in {time.monotonic() - started:.1f} s")
    return python


def wheelhouse(env, code_dir):
    # type: (dict[str, str], str) -> str | None
    """The folder of the run's wheelhouse (fetched, checked, unpacked), or None with a note saying
    why the index is used instead."""
    if not env.get("AFLOW_WHEELS_KEY"):
        note(f"no wheelhouse ({env.get('AFLOW_WHEELS_NOTE') or 'none was made'})")
        return None
    here = f"{sys.version_info[0]}.{sys.version_info[1]}"
    if env.get("AFLOW_WHEELS_PYTHON") != here:
        note(
            f"the wheelhouse is for Python {env.get('AFLOW_WHEELS_PYTHON')}, the image has {here} "
            "(set AFLOW_WHEELHOUSE_PYTHON)"
        )
        return None
    data = fetch(env, "WHEELS")
    if hashlib.sha256(data).hexdigest() != env["AFLOW_WHEELS_SHA256"]:
        fail(f"the wheelhouse {env['AFLOW_WHEELS_KEY']} does not match its hash")
    folder = os.path.join(code_dir, ".aflow-wheels")
    with tarfile.open(fileobj=io.BytesIO(data), mode="r:") as tar:
        for member in tar.getmembers():  # flat: wheel files only
            if not member.isfile() or os.path.basename(member.name) != member.name:
                fail(f"the wheelhouse holds an unexpected entry {member.name!r}")
        tar.extractall(folder)
    return folder


def install(env, code_dir, missing):
    # type: (dict[str, str], str, list[str]) -> str
    """The folder where what the image lacks is installed: from the run's wheelhouse (no index),
    else from the index as pip is configured."""
    # Into a folder of our own: an image's system Python may refuse pip (PEP 668), and the
    # container may not run as root.
    target = os.path.join(code_dir, ".aflow-deps")
    # --no-compile: a task imports a small part of what is installed (botocore's thousands of
    # files); Python compiles those on import, and compiling everything took 40% of the install.
    pip = [sys.executable, "-m", "pip", "install", "-q", "--disable-pip-version-check", "--no-compile"]
    started = time.monotonic()
    wheels = wheelhouse(env, code_dir)
    if wheels is not None:
        done = subprocess.run(
            [*pip, "--no-index", "--find-links", wheels, "--target", target, *missing],
            capture_output=True, text=True,
        )  # fmt: skip
        if done.returncode == 0:
            took = time.monotonic() - started
            note(f"installed {' '.join(missing)} from the wheelhouse in {took:.1f} s")
            return target
        note(f"the wheelhouse did not serve ({(done.stderr or done.stdout).strip()[-300:]})")
    note(f"installing {' '.join(missing)} from the index")
    run([*pip, "--target", target, *missing], "pip (no usable wheelhouse, and the index failed)")
    return target


def importable(module):
    # type: (str) -> bool
    try:
        return importlib.util.find_spec(module) is not None
    except ImportError:  # "azure.storage.blob" without "azure"
        return False


def main():
    # type: () -> None
    if os.getpid() == 1:
        signal.signal(signal.SIGTERM, on_sigterm)
    # The job's settings (prefixed to this file by backends/launch.py); the platform's own
    # variables (array index, job id) win.
    env = dict(globals().get("AFLOW_SETTINGS") or {})
    env.update(os.environ)
    if not env.get("AFLOW_ENV_KEY"):
        check_python(env)
    code_dir = writable_dir(env.get("AFLOW_CODE_DIR"))
    data = fetch(env, "CODE")
    if hashlib.sha256(data).hexdigest() != env["AFLOW_CODE_SHA256"]:
        fail(f"the code package {env['AFLOW_CODE_KEY']} does not match its hash")
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
            paths.append(install(env, code_dir, missing))
    env["AFLOW_CODE_DIR"] = code_dir
    if NOTES:
        env["AFLOW_BOOT_NOTES"] = os.path.join(code_dir, ".aflow-boot-notes")
        with open(env["AFLOW_BOOT_NOTES"], "w") as f:
            f.write("\n".join(NOTES) + "\n")
    env["PYTHONPATH"] = os.pathsep.join(p for p in (*paths, env.get("PYTHONPATH")) if p)
    argv = [python, "-u", "-m", "aflow.engine.task_runtime", "--remote"]
    if os.getpid() == 1:
        # A handler does not survive exec, and PID 1 ignores a SIGTERM it has no handler for: one
        # arriving while the runtime imports would be lost. A blocked signal waits instead; the
        # runtime unblocks it once its handler is in place.
        signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGTERM})
    os.execve(python, argv, env)


if __name__ == "__main__":  # as `python3 -c`; importing this module runs nothing
    main()
