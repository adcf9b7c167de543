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
from typer.core import TyperCommand
from typer.exceptions import TyperException

from cnnkit.allocator import keep_freed_memory
from cnnkit.cli._help import CnnkitGroup, polish_command

# Typer (>= 0.29) carries its own copy of click: only Typer's public names are used here, so
# the CLI needs no click install (a base install that imported click failed on a fresh venv).
# Usage errors (bad option, missing argument) are TyperExceptions with show() and exit_code.

# Each command: (its module, which has register(app); the first line of its help). A command's
# module (and the library stages it uses) loads only when that command runs or shows its help,
# so `cnnkit --help` starts at once; tests/cli/test_main.py checks the lines match the commands.
COMMANDS: dict[str, tuple[str, str]] = {
    "demo": (
        "cnnkit.cli.train_cmds",
        "Export real MNIST digits (mnist-5k) to a PNG folder, train basic_convnet, write a report.",
    ),
    "datasets": (
        "cnnkit.cli.data_cmds",
        "List the named datasets (available or not, and how to get them); export one.",
    ),
    "audit": (
        "cnnkit.cli.data_cmds",
        "Classes, counts, sizes, modes, broken/mismatched/tiny files, EXIF rotation, duplicates.",
    ),
    "augment-preview": (
        "cnnkit.cli.data_cmds",
        "A grid of augmented versions of sample images (the lecture's figure).",
    ),
    "train": (
        "cnnkit.cli.train_cmds",
        "Train a model on a folder or a named dataset into a run folder.",
    ),
    "learning-curve": (
        "cnnkit.cli.train_cmds",
        "Train on growing subsets of the training images; predict the accuracy with more images.",
    ),
    "lr-find": (
        "cnnkit.cli.train_cmds",
        "Learning-rate range test: loss against a growing rate, and the rate train would pick.",
    ),
    "evaluate": (
        "cnnkit.cli.train_cmds",
        "Accuracy with a 95% CI, per-class precision/recall/F1 and the confusion matrix.",
    ),
    "predict": (
        "cnnkit.cli.train_cmds",
        "Top-k labels and probabilities per file (exit 1 if any file failed).",
    ),
    "summary": (
        "cnnkit.cli.model_cmds",
        "Layer table: output shapes, parameters, multiply-adds; trainable / non-trainable totals.",
    ),
    "models": (
        "cnnkit.cli.model_cmds",
        "List the model zoo: names, default input size, minimum size, parameters.",
    ),
    "weights": (
        "cnnkit.cli.model_cmds",
        "Published pretrained weights, fetched on request (cnnkit never downloads by itself).",
    ),
    "activations": (
        "cnnkit.cli.explain_cmds",
        "Intermediate activations of IMAGE as channel grids, one per layer.",
    ),
    "filters": (
        "cnnkit.cli.explain_cmds",
        "Filter patterns of a layer by gradient ascent (--raw: first-layer kernels).",
    ),
    "explain": (
        "cnnkit.cli.explain_cmds",
        "Class-activation heatmap (Grad-CAM) of IMAGE, overlaid on it.",
    ),
    "report": (
        "cnnkit.cli.report_cmds",
        "Write RUN/report.html (one self-contained file) and the plots it shows.",
    ),
    "export": (
        "cnnkit.cli.serve_cmds",
        "Export RUN's model to ONNX and check it against PyTorch on the run's own images.",
    ),
    "serve": (
        "cnnkit.cli.serve_cmds",
        "Serve RUN over HTTP: POST /predict, POST /explain, GET /health and a web page at /.",
    ),
    "cache": ("cnnkit.cli.data_cmds", "The decode-once image cache ($CNNKIT_CACHE_DIR)."),
    "genomics": (
        "cnnkit.cli.genomics_cmds",
        "Genomic prediction: 1D CNN / MLP on SNP matrices vs GBLUP and ridge baselines.",
    ),
}


HELP_NAMES = ["-h", "--help"]


def load_command(name: str) -> Any:
    """The real click command ``name`` (its module imported and registered now)."""
    sub = typer.Typer(add_completion=False, pretty_exceptions_enable=False)
    importlib.import_module(COMMANDS[name][0]).register(sub)
    _interruptible(sub)
    command = typer.main.get_group(sub).commands[name]
    polish_command(command, HELP_NAMES)
    return command


class _LazyCommand(TyperCommand):
    """Stands for a command in the root group (name and help line); the real command is
    loaded when it is run or asked for its help."""

    def make_context(self, info_name: Any, args: list[str], parent: Any = None, **extra: Any):
        return load_command(self.name or "").make_context(info_name, args, parent=parent, **extra)


class _Root(CnnkitGroup):
    def __init__(self, **attrs: Any) -> None:
        super().__init__(**attrs)
        for name, (_, short) in COMMANDS.items():
            self.commands[name] = _LazyCommand(name=name, help=short, callback=None)


app = typer.Typer(
    name="cnnkit",
    cls=_Root,  # commands load lazily; one help style for every option (cnnkit.cli._help)
    help="Convolutional neural networks on small, real data.\n\n"
    "Example: cnnkit train fm --out runs/fm (and cnnkit COMMAND --help for each command)",
    add_completion=False,
    pretty_exceptions_enable=False,
    context_settings={"help_option_names": HELP_NAMES},
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
    keep_freed_memory()  # before any thread allocates: the CLI opts in (cnnkit.allocator)
    args = list(sys.argv[1:] if argv is None else argv)
    debug = _debug_requested(args)
    if debug and args and args[0] != "--debug":
        # --debug is a root option; accept it anywhere on the line.
        args = ["--debug"] + [a for a in args if a != "--debug"]
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
