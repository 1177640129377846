"""Every command's --help, the bare commands and --version: the first things anyone runs.

They run as a user runs them (the `aflow` module's entry point and `python flow.py`, in a fresh
process), so a help text that the installed typer/click/rich cannot render fails here.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import click
import pytest
import typer.main

import aflow
from aflow.cli.app import app

EXAMPLE = Path(__file__).resolve().parent.parent / "examples" / "linear.py"


def _command_paths(command: click.Command, prefix: tuple[str, ...] = ()) -> list[tuple[str, ...]]:
    paths = [prefix]
    for name, sub in getattr(command, "commands", {}).items():
        paths += _command_paths(sub, (*prefix, name))
    return paths


COMMANDS = _command_paths(typer.main.get_command(app))


def _aflow(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "aflow", *args], capture_output=True, text=True, timeout=120
    )


def _clean(result: subprocess.CompletedProcess[str]) -> None:
    assert "Traceback" not in result.stderr + result.stdout, result.stderr
    assert "Error" not in result.stderr, result.stderr


@pytest.mark.parametrize("path", COMMANDS, ids=lambda p: " ".join(p) or "aflow")
def test_every_command_has_help(path: tuple[str, ...]) -> None:
    result = _aflow(*path, "--help")
    _clean(result)
    assert result.returncode == 0
    assert result.stdout.startswith("Usage: ") and " ".join(("aflow", *path)) in result.stdout


def test_the_commands_cover_what_the_readme_shows() -> None:
    names = {" ".join(p) for p in COMMANDS}
    assert {"run", "resume", "check", "show", "logs", "ui", "list runs", "package"} <= names


def test_bare_aflow_shows_the_commands() -> None:
    result = _aflow()
    _clean(result)
    shown = result.stdout + result.stderr  # click shows it on stderr, exit 2, as for a usage error
    assert "Commands:" in shown and "  run " in shown


def test_help_text_with_brackets_is_shown_as_written() -> None:
    result = _aflow("logs", "--help")
    assert "RUN_ID/STEP[/TASK_ID]" in result.stdout  # once read as markup tags, and a crash


def test_run_help_shows_the_flow_file_as_required() -> None:
    usage = _aflow("run", "--help").stdout.splitlines()[0]
    assert "FLOW_FILE" in usage and "[FLOW_FILE]" not in usage  # typer shows it as {FLOW_FILE}


def test_version() -> None:
    result = _aflow("--version")
    assert result.returncode == 0 and result.stdout.startswith(f"aflow {aflow.__version__} ")


@pytest.mark.parametrize("args", [[], ["--help"], ["run", "--help"], ["logs", "--help"]])
def test_a_flow_file_is_its_own_command_line(args: list[str]) -> None:
    result = subprocess.run(
        [sys.executable, str(EXAMPLE), *args], capture_output=True, text=True, timeout=120
    )
    _clean(result)
    assert "Usage: " in result.stdout + result.stderr


def test_a_flow_typed_into_python_says_to_use_a_file(tmp_path: Path) -> None:
    source = (
        "from aflow import FlowSpec, step\n"
        "class Typed(FlowSpec):\n"
        "    @step\n"
        "    def start(self):\n"
        "        self.next(self.end)\n"
        "    @step\n"
        "    def end(self):\n"
        "        pass\n"
        "Typed()\n"
    )
    result = subprocess.run(
        [sys.executable, "-", "run"], input=source, capture_output=True, text=True, timeout=120,
        cwd=tmp_path,
    )
    assert result.returncode == 1
    assert "define the flow in a .py file" in result.stderr
    assert "no 'start' step" not in result.stderr
