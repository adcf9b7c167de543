"""A learning-curve folder (``cnnkit learning-curve``) -> ``learning_curve.png`` and its
``report.html``: the same page layout and style as a run's report, with the curve, the
predictions for more images and every point."""

from __future__ import annotations

import shlex
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from cnnkit.errors import RunFolderError
from cnnkit.fileio import atomic_write_bytes, atomic_write_text, read_json
from cnnkit.report import context as ctx
from cnnkit.report.html import make_env
from cnnkit.report.plots import learning_curve_png
from cnnkit.runs import layout
from cnnkit.train.config import TrainConfig
from cnnkit.train.learning_curves import DEFAULT_FRACTIONS, DEFAULT_REPEATS

TEMPLATE = "learning_curve.html.j2"


def is_learning_curve(folder: str | Path) -> bool:
    """Whether ``folder`` holds a learning curve (``learning_curve.json``)."""
    return (Path(folder) / layout.LEARNING_CURVE).is_file()


def render_learning_curve(folder: str | Path) -> Path:
    """Draw ``learning_curve.png`` and write ``report.html`` for a learning-curve folder.

    Args:
        folder: the folder ``cnnkit learning-curve --out`` wrote.

    Returns:
        The path of ``report.html``.

    Raises:
        RunFolderError: ``learning_curve.json`` is missing, unreadable or has no points.

    Example:
        >>> from cnnkit.report import render_learning_curve
        >>> render_learning_curve("curves/fm")  # doctest: +SKIP
        PosixPath('curves/fm/report.html')
    """
    path = Path(folder)
    if not is_learning_curve(path):
        raise RunFolderError(f"{path} holds no {layout.LEARNING_CURVE}: not a learning curve")
    summary = read_json(path / layout.LEARNING_CURVE, "learning curve")
    try:
        png = learning_curve_png(summary)
    except (ValueError, TypeError, KeyError) as e:
        raise RunFolderError(f"{path / layout.LEARNING_CURVE}: cannot be plotted ({e})") from e
    atomic_write_bytes(path / layout.LEARNING_CURVE_PNG, png)
    html = make_env().get_template(TEMPLATE).render(**build_context(summary, png, path))
    return atomic_write_text(path / layout.REPORT, html)


def build_context(summary: Mapping[str, Any], png: bytes, path: Path) -> dict[str, Any]:
    """The template's variables."""
    settings = dict(summary.get("settings") or {})
    return {
        "name": path.resolve().name,
        "folder": shlex.quote(str(path.resolve())),
        "s": summary,
        "complete": summary.get("status") == "complete",
        "image": ctx.image(png, 2),
        "settings": ctx.settings_rows(settings),
        "reproduce": reproduce_command(summary, path),
    }


def reproduce_command(summary: Mapping[str, Any], path: Path) -> str | None:
    """``cnnkit learning-curve DATA --out NAME-again`` with every setting that differs from
    its default (generated from :class:`TrainConfig`'s fields, as a run's report does)."""
    try:
        settings = TrainConfig.from_dict(dict(summary.get("settings") or {}))
    except (ValueError, TypeError):
        return None
    groups = [["cnnkit", "learning-curve", settings.data], ["--out", f"{path.name}-again"]]
    fractions = tuple(float(f) for f in summary.get("fractions") or DEFAULT_FRACTIONS)
    if fractions != DEFAULT_FRACTIONS:
        groups.append(["--fractions", ",".join(format(f, "g") for f in fractions)])
    if summary.get("repeats", DEFAULT_REPEATS) != DEFAULT_REPEATS:
        groups.append(["--repeats", str(summary["repeats"])])
    groups += settings.cli_args()
    return ctx.wrap_command([" ".join(shlex.quote(a) for a in g) for g in groups])
