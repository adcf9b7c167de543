"""The ``cnnkit`` command: a thin Typer app over the library.

Each command module exposes ``register(app)``. Errors from bad input (``ValueError``,
``TypeError``, ``FileNotFoundError``, :class:`cnnkit.errors.CnnkitError`) become one
line on stderr and exit code 2; ``--debug`` shows the traceback instead.
"""

from __future__ import annotations

import functools
import importlib
import os
import sys
from collections.abc import Callable
from typing import Any

import typer
from typer.exceptions import TyperException

from cnnkit.cli._help import CnnkitGroup

# Typer (>= 0.29) carries its own copy of click: only Typer's public names are used here, so
# the CLI needs no click install (a base install that imported click failed on a fresh venv).
# Usage errors (bad option, missing argument) are TyperExceptions with show() and exit_code.

app = typer.Typer(
    name="cnnkit",
    cls=CnnkitGroup,  # one help style for every option of every command (cnnkit.cli._help)
    help="Convolutional neural networks on small, real data.\n\n"
    "Example: cnnkit train fm --out runs/fm (and cnnkit COMMAND --help for each command)",
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
    _interruptible(app)


def _interruptible(typer_app: typer.Typer) -> None:
    """Ctrl-C in any command: one line on stderr and exit code 130.

    Typer turns a KeyboardInterrupt into a silent exit 130; a command's own interrupt (a
    training run's ``RunInterrupted``) knows what to say (where it stopped, how to continue),
    so every command callback is wrapped to say it before Typer sees the interrupt.
    """
    for info in typer_app.registered_commands:
        if info.callback is not None:
            info.callback = _say_interrupt(info.callback)
    for group in typer_app.registered_groups:
        if group.typer_instance is not None:
            _interruptible(group.typer_instance)


def _say_interrupt(fn: Callable[..., Any]) -> Callable[..., Any]:
    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except KeyboardInterrupt as e:
            sys.stderr.write((_message(e) if hasattr(e, "cli_message") else "interrupted") + "\n")
            raise typer.Exit(130) from None

    return wrapper


_register_all()


def _debug_requested(argv: list[str]) -> bool:
    return "--debug" in argv or os.environ.get("CNNKIT_DEBUG") == "1"


def _message(e: BaseException) -> str:
    """The one line shown for a user error: the CLI wording where the error has one (it names
    flags where the library's names Python arguments), else the message itself."""
    cli_message = getattr(e, "cli_message", None)
    if callable(cli_message):
        return str(cli_message())
    if isinstance(e, KeyError):
        return str(e.args[0] if e.args else e)
    return str(e)


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
    except typer.Exit as e:
        return e.exit_code
    except typer.Abort:
        sys.stderr.write("aborted\n")
        return 130
    except TyperException as e:
        if debug:
            raise
        e.show()  # type: ignore[attr-defined]  # ClickException, a TyperException
        return e.exit_code
    except KeyboardInterrupt as e:  # a training run says where it stopped and how to continue
        sys.stderr.write((_message(e) if hasattr(e, "cli_message") else "interrupted") + "\n")
        return 130
    except (ValueError, TypeError, OSError, KeyError) as e:  # OSError: missing file, disk full...
        if debug:
            raise
        lines = [line.strip() for line in _message(e).splitlines() if line.strip()]
        sys.stderr.write(f"error: {' '.join(lines)}\n")  # one line, whatever the library said
        return 2


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
