"""`Runner`: Metaflow's programmatic API for running a flow file from Python.

`with Runner("flow.py").run(alpha=3) as running: running.run.data.x`, and `await
Runner("flow.py").async_run()` from async code. Like Metaflow's, it runs the flow's own command
line in a child process (`python -m aflow run flow.py ...`), so the flow file's module-level code,
`env=`, `cwd=` and the captured `stdout`/`stderr` behave as they do there, and a run never shares
the caller's interpreter state. The run id comes back through `--run-id-file` as soon as the run
exists; `.run` is then the client's `Run`, read from the run's own store.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import IO, Any

from aflow.exception import AflowException

# Options of `aflow run` given as keyword arguments that are lists: each item is one option.
_REPEATED = {"tags": "--tag", "tag": "--tag", "with_": "--with", "with": "--with", "decospecs": "--with"}


def _options(kwargs: dict[str, Any], flags: frozenset[str] = frozenset()) -> list[str]:
    """Keyword arguments as command-line options: `max_workers=4` is `--max-workers 4`, a list is
    the option repeated, True is a bare flag, None leaves the option out, and False leaves out one
    of the command's own flags (`flags`) or is `--name False` for a flow's boolean parameter."""
    args: list[str] = []
    for key, value in kwargs.items():
        option = _REPEATED.get(key) or "--" + key.rstrip("_").replace("_", "-")
        if value is None or (value is False and key.rstrip("_") in flags):
            continue
        if value is False:
            args += [option, "False"]
        elif value is True:
            args.append(option)
        elif isinstance(value, (list, tuple, set)) and key in _REPEATED:
            for item in value:
                args += [option, str(item)]
        else:
            args += [option, value if isinstance(value, str) else _text(value)]
    return args


def _text(value: Any) -> str:
    import json

    return json.dumps(value) if isinstance(value, (dict, list, tuple)) else str(value)


class ExecutingRun:
    """A run started by a Runner: its `run` (the client's Run), `status`, `returncode`, and the
    command's `stdout` and `stderr` so far. A context manager; leaving it stops a run still going."""

    def __init__(self, runner: Runner, process: subprocess.Popen[bytes], logs: dict[str, Path]):
        self._runner = runner
        self._process = process
        self._logs = logs
        self._timed_out = False
        self._run: Any = None
        self._run_id: str | None = None

    def __enter__(self) -> ExecutingRun:
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop()

    async def __aenter__(self) -> ExecutingRun:
        return self

    async def __aexit__(self, *exc: object) -> None:
        self._stop()

    def _stop(self) -> None:
        if self._process.poll() is None:
            self._process.terminate()  # the CLI records the run as cancelled on SIGTERM
            try:
                self._process.wait(30)
            except subprocess.TimeoutExpired:
                self._process.kill()
                self._process.wait()

    @property
    def run_id(self) -> str | None:
        if self._run_id is None:
            path = self._runner._run_id_file
            self._run_id = (path.read_text() if path.exists() else "").strip() or None
        return self._run_id

    @property
    def run(self) -> Any:
        """The client's Run of this run (None if the run never started: see `stderr`)."""
        if self._run is None and self.run_id is not None:
            from aflow.client import Run

            flow = self._runner.flow_name()
            where = self._runner.store_options()
            self._run = Run(f"{flow}/{self.run_id}", _namespace_check=False, **where)
        return self._run

    @property
    def returncode(self) -> int | None:
        return self._process.poll()

    @property
    def status(self) -> str:
        """running, successful, failed, or timeout (as Metaflow's ExecutingRun says it)."""
        if self._timed_out:
            return "timeout"
        code = self._process.poll()
        if code is None:
            return "running"
        return "successful" if code == 0 else "failed"

    @property
    def stdout(self) -> str:
        return self._logs["stdout"].read_text(errors="replace")

    @property
    def stderr(self) -> str:
        return self._logs["stderr"].read_text(errors="replace")

    async def wait(self, timeout: float | None = None, stream: str | None = None) -> ExecutingRun:
        """Wait for the run to end (stopping it after `timeout` seconds); `stream` ("stdout" or
        "stderr") prints that stream's lines meanwhile."""
        import anyio

        async def follow() -> None:
            assert stream is not None
            async for _, line in self.stream_log(stream):
                print(line)

        async with anyio.create_task_group() as tg:
            if stream is not None:
                tg.start_soon(follow)
            with anyio.move_on_after(timeout) as scope:
                await anyio.to_thread.run_sync(self._process.wait, abandon_on_cancel=True)
            if scope.cancelled_caught:
                self._timed_out = True
                await anyio.to_thread.run_sync(self._stop)
        return self

    async def stream_log(
        self, stream: str, position: int | None = None
    ) -> AsyncIterator[tuple[int, str]]:
        """(position, line) for each line of `stream` from `position` on, until the run ends."""
        import anyio

        async with await anyio.open_file(self._logs[stream], "rb") as f:
            await f.seek(position or 0)
            pending = b""
            while True:
                ended = self._process.poll() is not None
                chunk = await f.read()
                if chunk:
                    *lines, pending = (pending + chunk).split(b"\n")
                    end = await f.tell()
                    for line in lines:
                        yield end - len(pending), line.decode(errors="replace")
                    continue
                if ended:
                    if pending:
                        yield await f.tell(), pending.decode(errors="replace")
                    return
                await anyio.sleep(0.1)  # the file grows as the child writes: read what came


class Runner:
    """Run a flow file from Python, as Metaflow's Runner does.

    `Runner(flow_file, show_output=True, env=None, cwd=None, **options)`: options are the
    command line's (`datastore=`, `datastore_root=`, `with_=[...]`, `max_workers=`, ...);
    `run(**kwargs)` takes the flow's parameters and `aflow run`'s options.
    """

    def __init__(
        self,
        flow_file: str,
        show_output: bool = True,
        profile: str | None = None,
        env: dict[str, str] | None = None,
        cwd: str | None = None,
        file_read_timeout: int = 3600,
        **kwargs: Any,
    ) -> None:
        self.flow_file = os.path.abspath(flow_file)
        if not os.path.isfile(self.flow_file):
            raise AflowException(f"Runner: no flow file at {self.flow_file}")
        self.show_output = show_output
        self.env = {**os.environ, **(env or {})}
        self.cwd = cwd or os.getcwd()
        self.file_read_timeout = file_read_timeout
        self.top_level = kwargs
        self._dir = Path(tempfile.mkdtemp(prefix="aflow-runner-"))
        self._run_id_file = self._dir / "run-id"
        self._flow_name: str | None = None

    def __enter__(self) -> Runner:
        return self

    def __exit__(self, *exc: object) -> None:
        self.cleanup()

    async def __aenter__(self) -> Runner:
        return self

    async def __aexit__(self, *exc: object) -> None:
        self.cleanup()

    def cleanup(self) -> None:
        shutil.rmtree(self._dir, ignore_errors=True)

    def run(self, **kwargs: Any) -> ExecutingRun:
        """Run the flow to its end; the returned ExecutingRun says how it went."""
        running = self._start("run", kwargs)
        running._process.wait()
        running.run_id  # noqa: B018 - read now: the file goes with cleanup()
        return running

    def resume(self, **kwargs: Any) -> ExecutingRun:
        """Resume the latest run (or `origin_run_id=`), from its failure or `step=`."""
        running = self._start("resume", kwargs)
        running._process.wait()
        running.run_id  # noqa: B018 - read now: the file goes with cleanup()
        return running

    async def async_run(self, **kwargs: Any) -> ExecutingRun:
        """Start the flow and return as soon as its run exists; `await running.wait()`."""
        return await self._async_start("run", kwargs)

    async def async_resume(self, **kwargs: Any) -> ExecutingRun:
        return await self._async_start("resume", kwargs)

    # -- the child process ---------------------------------------------------------------------

    def flow_name(self) -> str:
        if self._flow_name is None:
            self._flow_name = flow_class_name(self.flow_file)
        return self._flow_name

    def store_options(self) -> dict[str, Any]:
        """Where the run's records are, for the client: the same store the command used."""
        datastore = self.top_level.get("datastore") or self.env.get("AFLOW_DEFAULT_DATASTORE")
        root = self.top_level.get("datastore_root")
        if root is None and (datastore or "local") == "local":
            root = self.env.get("AFLOW_DATASTORE_ROOT") or os.path.join(self.cwd, ".aflow")
        return {"datastore": datastore, "datastore_root": root}

    def _command(self, command: str, kwargs: dict[str, Any]) -> list[str]:
        import typer.main

        from aflow.cli.app import app

        params = typer.main.get_command(app).commands[command].params  # type: ignore[attr-defined]
        flags = frozenset(p.name for p in params if getattr(p, "is_flag", False))
        return [
            sys.executable, "-m", "aflow", command, self.flow_file,
            "--run-id-file", str(self._run_id_file), *_options(self.top_level, flags),
            *_options(kwargs, flags),
        ]  # fmt: skip

    def _start(self, command: str, kwargs: dict[str, Any]) -> ExecutingRun:
        self._run_id_file.unlink(missing_ok=True)
        logs = {s: self._dir / f"{command}-{time.time_ns()}.{s}" for s in ("stdout", "stderr")}
        files = {s: open(p, "wb") for s, p in logs.items()}  # noqa: SIM115 - closed below
        pipe = subprocess.PIPE if self.show_output else None
        process = subprocess.Popen(
            self._command(command, kwargs),
            cwd=self.cwd,
            env=self.env,
            stdin=subprocess.DEVNULL,
            stdout=pipe or files["stdout"],
            stderr=pipe or files["stderr"],
        )
        if self.show_output:
            assert process.stdout is not None and process.stderr is not None
            for source, sink, echo in (
                (process.stdout, files["stdout"], sys.stdout),
                (process.stderr, files["stderr"], sys.stderr),
            ):
                threading.Thread(target=_tee, args=(source, sink, echo), daemon=True).start()
        else:
            for f in files.values():
                f.close()  # the child has its own copies
        return ExecutingRun(self, process, logs)

    async def _async_start(self, command: str, kwargs: dict[str, Any]) -> ExecutingRun:
        import anyio

        running = await anyio.to_thread.run_sync(self._start, command, kwargs)
        deadline = time.monotonic() + self.file_read_timeout
        # The run id is written once the run is checked and started: wait for it, or the end.
        while running.run_id is None and running.returncode is None:
            if time.monotonic() > deadline:
                raise AflowException(
                    f"Runner: no run id from {self.flow_file} in {self.file_read_timeout} s"
                )
            await anyio.sleep(0.05)
        return running


def flow_class_name(path: str) -> str:
    """The flow a file runs, read from its source without running it: the class instantiated
    under `if __name__ == "__main__":`, else its one class deriving from FlowSpec."""
    import ast

    from aflow.engine.flow_loader import main_flow_name

    found = main_flow_name(path)
    if found is not None:
        return found
    tree = ast.parse(Path(path).read_text(), path)
    flows = [
        node.name
        for node in tree.body
        if isinstance(node, ast.ClassDef)
        and any((b.id if isinstance(b, ast.Name) else getattr(b, "attr", "")) == "FlowSpec"
                for b in node.bases)
    ]  # fmt: skip
    if len(flows) == 1:
        return flows[0]
    raise AflowException(
        f"Runner: cannot tell which flow {path} runs ({', '.join(flows) or 'no FlowSpec class'}): "
        'instantiate it under `if __name__ == "__main__":`'
    )


def _tee(source: IO[bytes], sink: IO[bytes], echo: Any) -> None:
    """Copy a child's stream to its log file and to ours, line by line, until it closes."""
    with source, sink:
        for line in iter(source.readline, b""):
            sink.write(line)
            sink.flush()
            echo.write(line.decode(errors="replace"))
            echo.flush()


__all__ = ["ExecutingRun", "Runner"]
