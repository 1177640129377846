"""What a remote container does before aflow's runtime runs (engine/bootstrap.py), in the images
users really have: a bare Python with only its standard library and pip and no way to PyPI (the
run's wheelhouse serves), ... Containers run on the AWS Batch emulator (the tests marked
`on_both` on the Kubernetes one too), data through moto's S3."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import anyio
import pytest
from k8s_support import k8s  # noqa: F401  (the fixture, used by name)
from test_batch_backend import FLOWS, on_batch, run  # noqa: F401  (the fixture, used by name)

from aflow import namespace, run_flow
from aflow.engine.flow_loader import load_flow_file


def everyones_python() -> str:
    """A Python of ours that uid 65534 can run too (pyenv's under /root is root's alone): a venv's
    python is a link to it."""
    here = os.path.realpath(getattr(sys, "_base_executable", sys.executable))
    for candidate in (here, f"/usr/bin/python{sys.version_info.major}.{sys.version_info.minor}"):
        folders = Path(candidate).parents
        if os.path.exists(candidate) and all(f.stat().st_mode & 0o001 for f in folders):
            return candidate
    return here


@pytest.fixture(scope="module")
def bare_python() -> Iterator[Path]:
    """A fresh `python -m venv` of the scheduler's base Python: the standard library and pip,
    none of aflow's requirements. Readable by every user (uid 65534 too)."""
    folder = Path(tempfile.mkdtemp(prefix="aflow-bare-"))
    folder.chmod(0o755)
    subprocess.run([everyones_python(), "-m", "venv", str(folder / "venv")], check=True)
    python = folder / "venv" / "bin" / "python3"
    lacks = subprocess.run([python, "-c", "import anyio"], capture_output=True)
    assert lacks.returncode != 0, "the bare Python must not see the scheduler's packages"
    try:
        yield python
    finally:
        subprocess.run(["rm", "-rf", str(folder)], check=False)


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def emulator(request, monkeypatch):
    """Where the containers run: the Batch emulator, or the Kubernetes one for a test marked
    `on_both` (the same remote flows, through @kubernetes)."""
    if getattr(request, "param", "batch") == "batch":
        return request.getfixturevalue("on_batch")
    fake = request.getfixturevalue("k8s")
    datastore, root = fake.store
    monkeypatch.setenv("AFLOW_TEST_COMPUTE", "kubernetes")
    monkeypatch.setenv("AFLOW_DEFAULT_DATASTORE", datastore)
    monkeypatch.setenv("AFLOW_DATASTORE_SYSROOT_S3", root)
    namespace(None)
    return fake


on_both = pytest.mark.parametrize("emulator", ["batch", "kubernetes"], indirect=True)


def image_env(fake) -> dict[str, str]:
    """The environment the emulator's containers start from (the image's ENV)."""
    return fake.base_env if hasattr(fake, "base_env") else fake.pod_env


def container_output(fake) -> str:
    """Everything the emulator's containers printed."""
    if hasattr(fake, "jobs"):
        return "\n".join(line for job in fake.jobs.values() for line in fake.log_lines(job.job_id))
    return "\n".join(fake.pod_log(pod["metadata"]["name"]) for pod in fake.pods())


def bare_image(fake, python: Path) -> None:
    """The emulator's containers run `python3` from the bare venv, with no index reachable."""
    env = image_env(fake)
    env["PATH"] = os.pathsep.join([str(python.parent), "/usr/bin", "/bin"])
    env["PIP_INDEX_URL"] = f"http://127.0.0.1:{closed_port()}/simple"  # PyPI unreachable
    env["PIP_NO_CACHE_DIR"] = "1"


@on_both
def test_a_bare_image_without_pypi_runs_the_flow_from_the_wheelhouse(emulator, bare_python):
    bare_image(emulator, bare_python)
    result = run("remote_container")
    assert result.successful, result
    assert result["inside"].task.data.python == str(bare_python)
    out = result["inside"].task.stdout
    assert "from the wheelhouse" in out, out
    assert "from the index" not in out


@on_both
def test_without_a_wheelhouse_a_bare_image_without_pypi_fails_and_says_why(
    emulator, bare_python, monkeypatch
):
    monkeypatch.setenv("AFLOW_WHEELHOUSE", "0")
    bare_image(emulator, bare_python)
    result = run("remote_list")
    assert not result.successful
    lines = container_output(emulator)
    assert "no wheelhouse (AFLOW_WHEELHOUSE is off)" in lines, lines
    assert "installing" in lines and "from the index" in lines


def can_confine() -> bool:
    """Whether this machine lets us make PID, mount namespaces and change user (root, unshare)."""
    if os.geteuid() != 0 or not (shutil.which("unshare") and shutil.which("setpriv")):
        return False
    tried = subprocess.run(["unshare", "--mount", "--pid", "--fork", "true"], capture_output=True)
    return tried.returncode == 0


needs_confinement = pytest.mark.skipif(
    not can_confine(), reason="needs root, unshare and setpriv (PID and mount namespaces)"
)
NOBODY = 65534


@pytest.fixture
def confined(emulator, bare_python) -> Iterator[Path]:
    """Containers as a real image runs them: the bare Python, PyPI unreachable, as PID 1 of their
    own PID namespace, as uid/gid 65534, on a read-only root filesystem where only TMPDIR (the
    folder yielded) is writable; HOME exists and is read-only."""
    scratch = Path(tempfile.mkdtemp(prefix="aflow-container-tmp-"))
    scratch.chmod(0o1777)
    home = Path(tempfile.mkdtemp(prefix="aflow-container-home-"))
    home.chmod(0o755)
    bare_image(emulator, bare_python)
    image_env(emulator).update(TMPDIR=str(scratch), HOME=str(home))
    script = (
        f"set -e; mount --bind {scratch} {scratch}; mount -o remount,bind,ro /; "
        f'exec setpriv --reuid={NOBODY} --regid={NOBODY} --clear-groups -- "$@"'
    )
    namespaces = ["unshare", "--mount", "--propagation", "private", "--pid", "--fork", "--"]
    emulator.container_wrapper = [*namespaces, "sh", "-c", script, "sh"]
    try:
        yield scratch
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
        shutil.rmtree(home, ignore_errors=True)


@needs_confinement
@on_both
def test_non_root_read_only_root_pid_1_bare_image_runs_to_the_end(confined, bare_python):
    result = run("remote_container")
    assert result.successful, result
    data = result["inside"].task.data
    # The conditions held: not root, PID 1 of its namespace, nothing writable but TMPDIR.
    assert (data.uid, data.gid, data.pid) == (NOBODY, NOBODY, 1)
    assert data.python == str(bare_python)
    assert not (data.cwd_writable or data.home_writable or data.root_writable)
    assert data.tmp == str(confined)
    assert "from the wheelhouse" in result["inside"].task.stdout


def stop_while(on_batch, started, grace: float = 120.0) -> float:  # noqa: F811
    """Run remote_container with a long sleep, cancel the run once `started()` is true (its exit
    terminates the job: SIGTERM to the container), and return how long the container took to
    end. SIGKILL would come only after `grace` seconds."""
    on_batch.kill_grace = grace
    flow_cls = load_flow_file(str(FLOWS / "remote_container.py"))
    stopped_at: list[float] = []

    async def main() -> None:
        with anyio.move_on_after(120):
            async with anyio.create_task_group() as tg:
                tg.start_soon(lambda: run_flow(flow_cls, {"sleep": 300}))
                while not started():
                    await anyio.sleep(0.1)
                stopped_at.append(time.monotonic())
                tg.cancel_scope.cancel()

    anyio.run(main)
    said = [line for job in on_batch.jobs.values() for line in job.lines]
    assert stopped_at, f"the container never got there; it printed {said}"
    assert on_batch.calls("TerminateJob")
    while on_batch.live_processes() and time.monotonic() < stopped_at[0] + grace:
        time.sleep(0.1)
    return time.monotonic() - stopped_at[0]


def printed(on_batch, text: str) -> bool:  # noqa: F811
    return any(text in line for job in on_batch.jobs.values() for line in job.lines)


@needs_confinement
def test_sigterm_ends_a_pid_1_container_promptly(on_batch, confined):  # noqa: F811
    took = stop_while(on_batch, lambda: printed(on_batch, "inside: uid"))
    assert took < 30, f"the container outlived its SIGTERM by {took:.0f} s"
    (job,) = on_batch.jobs.values()
    assert job.attempts[-1].exit_code != -9, "it was SIGKILLed"


@needs_confinement
def test_sigterm_while_the_runtime_starts_is_not_lost(on_batch, confined, bare_python):  # noqa: F811
    # The runtime imports for a while before its handler is set; make that window long and send
    # SIGTERM inside it (as PID 1, a SIGTERM without a handler is ignored, not fatal).
    marker = confined / "runtime-importing"
    on_batch.base_env["AFLOW_TEST_SLOW_START"] = str(marker)
    site = next(bare_python.parent.parent.glob("lib/python3*/site-packages"))
    hook = site / "aflow_test_slow_start.pth"
    hook.write_text(
        "import os, sys, time; exec(\"if os.environ.get('AFLOW_TEST_SLOW_START') and "
        "'aflow.engine.task_runtime' in sys.orig_argv:\\n open(os.environ['AFLOW_TEST_SLOW_START'], "
        "'w').close(); time.sleep(8)\")\n"
    )
    try:
        took = stop_while(on_batch, marker.exists)
    finally:
        hook.unlink()
    assert took < 40, f"the container outlived its SIGTERM by {took:.0f} s"
    assert not printed(on_batch, "inside: uid"), "the step ran although it was stopped first"


def older_pythons() -> list[str]:
    """Pythons on this machine older than aflow needs (pyenv's, python3.N on the PATH): the
    oldest the bootstrap must still parse on (3.6: f-strings), and the newest too old."""
    found: dict[tuple[int, int], str] = {}
    roots = sorted(Path(os.environ.get("PYENV_ROOT", Path.home() / ".pyenv"), "versions").glob("3.*"))
    candidates = [str(r / "bin" / "python3") for r in roots]
    candidates += [p for n in range(6, 11) if (p := shutil.which(f"python3.{n}"))]
    for path in candidates:
        done = subprocess.run(
            [path, "-c", "import sys; print(*sys.version_info[:2])"], capture_output=True
        )
        if done.returncode == 0:
            version = tuple(int(v) for v in done.stdout.split())
            if (3, 6) <= version < (3, 11):
                found.setdefault((version[0], version[1]), path)
    return [found[v] for v in sorted(found)[:1] + sorted(found)[-1:]] if found else []


@pytest.mark.parametrize("python", older_pythons() or [None])
def test_an_image_python_too_old_is_named_in_the_failure(on_batch, python, tmp_path):  # noqa: F811
    if python is None:
        pytest.skip("no Python older than 3.11 on this machine (pyenv, python3.N)")
    image_bin = tmp_path / "image-bin"  # the image's python3 is that old Python
    image_bin.mkdir()
    (image_bin / "python3").symlink_to(python)
    on_batch.base_env["PATH"] = os.pathsep.join([str(image_bin), "/usr/bin", "/bin"])
    version = subprocess.run([python, "-V"], capture_output=True, text=True).stdout.split()[1]
    result = run("remote_list")
    assert not result.successful
    said = f"{result.error}\n{result['double'].task.stderr}\n{result['double'].task.stdout}"
    assert f"the image's python3 is {version}; aflow needs 3.11 or newer" in said, said
