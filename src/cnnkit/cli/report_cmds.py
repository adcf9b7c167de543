"""``cnnkit report RUN``: (re-)render a run folder's plots and its report.html."""

from __future__ import annotations

from pathlib import Path

import typer

from cnnkit.cli._common import JSON_OPTION, emit
from cnnkit.report import render_learning_curve, render_report
from cnnkit.report.curve_page import is_learning_curve

_PLOTS = ("curves.png", "confusion.png", "top_losses.png", "learning_curve.png")


def report(
    run: Path = typer.Argument(
        ..., help="Run folder (cnnkit train --out RUN) or learning-curve folder."
    ),
    top_losses: int = typer.Option(16, "--top-losses", help="How many highest-loss images."),
    as_json: bool = JSON_OPTION,
) -> None:
    """Write RUN/report.html (one self-contained file) and the plots it shows.

    Example: cnnkit report runs/fm
    """
    if top_losses < 1:
        raise ValueError(f"--top-losses must be a positive int. Received: {top_losses}")
    if is_learning_curve(run):
        path = Path(render_learning_curve(run)).resolve()
    else:
        path = Path(render_report(run, n_top_losses=top_losses)).resolve()
    plots = [str(path.parent / p) for p in _PLOTS if (path.parent / p).is_file()]
    emit({"report": str(path), "plots": plots}, as_json, f"report: {path}")


def register(app: typer.Typer) -> None:
    """Add ``cnnkit report`` to the CLI."""
    app.command("report")(report)
