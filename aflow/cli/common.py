"""What every command of the command line shares: the typer application they register on, loading a
flow file, and turning an error into one line on stderr and an exit code. It imports no command
module; the command modules import it, and `cli/app.py` imports them all.
"""

from __future__ import annotations

import os
import traceback
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from aflow.exception import AflowException, DamagedRecordWarning, FlowDefinitionError

if TYPE_CHECKING:
    from aflow.flowspec import FlowSpec

app = typer.Typer(
    add_completion=False,
    no_args_is_help=True,
    help="Run Metaflow-style flows on an asyncio engine.",
    pretty_exceptions_enable=False,
    # Plain click help: with Rich markup on, help text such as RUN_ID/STEP[/TASK_ID] is parsed as
    # markup tags and --help crashes (typer 0.20-0.29 with rich installed).
    rich_markup_mode=None,
)

_preloaded: dict[str, type[FlowSpec]] = {}
_debug = False  # --debug: print internal tracebacks

FlowFile = Annotated[Path, typer.Argument(help="The flow file (a .py file defining a FlowSpec).")]


def preload(file: str, flow_cls: type[FlowSpec]) -> None:
    """The flow class of a file that is already running (`python flow.py ...`)."""
    _preloaded[os.path.abspath(file)] = flow_cls


def load_flow(file: Path) -> type[FlowSpec]:
    path = os.path.abspath(file)
    if path in _preloaded:
        return _preloaded[path]
    from aflow.engine.flow_loader import load_flow_file

    return load_flow_file(path)


def fail(e: BaseException) -> None:
    if _debug:
        traceback.print_exception(e)
    hint = "" if _debug else " (run with --debug for the traceback)"
    if isinstance(e, FlowDefinitionError):
        typer.echo(f"{e.headline}:", err=True)
        for problem in e.problems:
            typer.echo(f"  {problem}", err=True)
    elif isinstance(e, AflowException):
        typer.echo(f"{e.headline}: {e}", err=True)
    else:
        typer.echo(f"error: {type(e).__name__}: {e}{hint}", err=True)
    raise typer.Exit(1)


def _format_warning(message: Any, category: type[Warning], *args: Any, **kwargs: Any) -> str:
    if issubclass(category, DamagedRecordWarning):
        return f"warning: {message}\n"  # aflow's own: the message says it all, no source line
    return _python_format_warning(message, category, *args, **kwargs)


_python_format_warning = warnings.formatwarning
warnings.formatwarning = _format_warning


def guarded(fn: Callable[[], Any]) -> Any:
    try:
        return fn()
    except (typer.Exit, typer.Abort, SystemExit):
        raise
    except KeyboardInterrupt:
        typer.echo("interrupted", err=True)
        raise typer.Exit(130) from None
    except Exception as e:
        fail(e)


def set_debug(on: bool) -> None:
    global _debug
    _debug = on
