"""The ``cnnkit`` command: a thin Typer app over the library.

Each command module exposes ``register(app)``. Errors from bad input (``ValueError``,
``TypeError``, ``FileNotFoundError``, :class:`cnnkit.errors.CnnkitError`) become one
line on stderr and exit code 2; ``--debug`` shows the traceback instead.
"""

from __future__ import annotations

import importlib
import os
import sys
from typing import Any

import click
import typer

# Recent Typer releases bundle their own copy of click, with their own exception classes;
# catch both so a usage error is always one line, never a traceback.
_ExitErrors: tuple[Any, ...] = (click.exceptions.Exit, typer.Exit)
_AbortErrors: tuple[Any, ...] = (click.exceptions.Abort, typer.Abort)
_UsageErrors: tuple[Any, ...] = (click.ClickException,)
try:
    from typer._click.exceptions import ClickException as _TyperClickException

    _UsageErrors += (_TyperClickException,)
except ImportError:  # pragma: no cover - older Typer uses click itself
    pass

app = typer.Typer(
    name="cnnkit",
    help="Convolutional neural networks on small, real data.",
    add_completion=False,
    pretty_exceptions_enable=False,
    context_settings={"help_option_names": ["-h", "--help"]},
)

# Command modules, each with register(app). A module that is missing (optional stage)
# is skipped so the rest of the CLI still works.
_COMMAND_MODULES = (
    "cnnkit.cli.data_cmds",
    "cnnkit.cli.model_cmds",
    "cnnkit.cli.train_cmds",
    "cnnkit.cli.explain_cmds",
    "cnnkit.cli.report_cmds",
    "cnnkit.cli.serve_cmds",
    "cnnkit.cli.genomics_cmds",
)


@app.callback(invoke_without_command=True)
def _root(
    ctx: typer.Context,
    debug: bool = typer.Option(False, "--debug", help="Show full tracebacks on errors."),
    version: bool = typer.Option(False, "--version", help="Print the version and exit."),
) -> None:
    """cnnkit: folder of images to trained model, report and heatmaps."""
    if version:
        from cnnkit import __version__

        typer.echo(__version__)
        raise typer.Exit()
    if ctx.invoked_subcommand is None:
        typer.echo(ctx.get_help())
        raise typer.Exit()


def _register_all() -> None:
    for mod_name in _COMMAND_MODULES:
        try:
            mod = importlib.import_module(mod_name)
        except ModuleNotFoundError as e:
            if e.name == mod_name:
                continue
            raise
        mod.register(app)


_register_all()


def _debug_requested(argv: list[str]) -> bool:
    return "--debug" in argv or os.environ.get("CNNKIT_DEBUG") == "1"


def main(argv: list[str] | None = None) -> int:
    """Entry point of the console script; returns the exit code."""
    args = list(sys.argv[1:] if argv is None else argv)
    debug = _debug_requested(args)
    if debug and args and args[0] != "--debug":
        # --debug is a root option; accept it anywhere on the line.
        args = ["--debug"] + [a for a in args if a != "--debug"]
    from cnnkit.cli import _common

    _common.ARGV[:] = [a for a in args if a != "--debug"]
    try:
        rv = app(args=args, prog_name="cnnkit", standalone_mode=False)
        return int(rv) if isinstance(rv, int) else 0
    except _ExitErrors as e:
        return e.exit_code
    except _AbortErrors:
        sys.stderr.write("aborted\n")
        return 130
    except _UsageErrors as e:
        if debug:
            raise
        e.show()
        return e.exit_code
    except KeyboardInterrupt:
        sys.stderr.write("interrupted\n")
        return 130
    except (ValueError, TypeError, OSError, KeyError) as e:  # OSError: missing file, disk full...
        if debug:
            raise
        msg = str(e) if not isinstance(e, KeyError) else str(e.args[0] if e.args else e)
        sys.stderr.write(f"error: {msg}\n")
        return 2


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
