"""The report's plots as PNG bytes: training curves, confusion matrix, top losses.

Figures are :class:`matplotlib.figure.Figure` objects drawn on the Agg canvas directly
(never ``pyplot``), inside a style context reset to matplotlib's defaults, so the output
does not depend on, and does not change, the caller's matplotlib state. The same inputs
give the same bytes.

Figures are laid out at 100 CSS pixels per inch and rendered at :data:`DPI` (2x) so
they stay sharp on high-density screens; show them at half their pixel size.

Example:
    >>> png = curves_png([{"epoch": 1, "loss": 0.9, "accuracy": 0.7,
    ...                    "val_loss": 0.8, "val_accuracy": 0.75}])
    >>> png[:4]
    b'\\x89PNG'
"""

from __future__ import annotations

import io
import math
import textwrap
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from typing import Any

import matplotlib
import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.ticker import FuncFormatter, MaxNLocator, PercentFormatter

from cnnkit.report.images import RunImages

DPI = 200
"""Pixels per inch of the PNGs (figures are sized for 100 CSS px per inch)."""

TRAIN_COLOR = "#2458b3"
VAL_COLOR = "#e07b39"
WRONG_COLOR = "#b3261e"
TEXT_COLOR = "#1d2430"
MUTED_COLOR = "#5d6878"
TILE_SIZE = (2.2, 2.75)
"""Width and height in inches of one top-losses tile, title included."""

_STYLE: dict[str, Any] = {
    "font.family": "DejaVu Sans",
    "font.size": 10,
    "axes.spines.top": False,
    "axes.spines.right": False,
    "axes.edgecolor": "#9aa3ad",
    "axes.labelcolor": TEXT_COLOR,
    "axes.titlesize": 11,
    "axes.titleweight": "bold",
    "axes.grid": True,
    "grid.color": "#e6e9ee",
    "grid.linewidth": 0.8,
    "xtick.color": MUTED_COLOR,
    "ytick.color": MUTED_COLOR,
    "legend.frameon": False,
    "svg.hashsalt": "cnnkit",
}

ImageLoader = Callable[[str], "np.ndarray | None"]


@contextmanager
def _style() -> Iterator[None]:
    """matplotlib defaults + our style, restored on exit (the caller's rcParams untouched)."""
    with matplotlib.rc_context():
        matplotlib.rcdefaults()
        matplotlib.rcParams.update(_STYLE)  # type: ignore[arg-type]
        yield


def _figure(width_in: float, height_in: float) -> Figure:
    fig = Figure(figsize=(width_in, height_in), dpi=DPI, layout="constrained")
    FigureCanvasAgg(fig)
    return fig


def _png(fig: Figure, tight: bool = False) -> bytes:
    """PNG bytes; ``tight`` grows/crops the canvas to every artist (long tick labels)."""
    buf = io.BytesIO()
    extra: dict[str, Any] = {"bbox_inches": "tight", "pad_inches": 0.08} if tight else {}
    fig.savefig(buf, format="png", facecolor="white", metadata={"Software": None}, **extra)
    return buf.getvalue()


# --------------------------------------------------------------------------- curves


def _column(rows: Sequence[Mapping[str, Any]], key: str) -> np.ndarray | None:
    """The column ``key`` as floats (NaN where missing/blank); None if all missing."""
    values = []
    for row in rows:
        v = row.get(key)
        try:
            values.append(float(v) if v not in (None, "") else math.nan)
        except (TypeError, ValueError):
            values.append(math.nan)
    arr = np.asarray(values, dtype=float)
    return None if np.isnan(arr).all() else arr


def _panel(ax, epochs, train, val, title: str, best: str) -> None:
    """One curves panel: training vs validation, with the best validation epoch marked."""
    marker = "o" if len(epochs) <= 30 else None
    for values, label, color in ((train, "training", TRAIN_COLOR), (val, "validation", VAL_COLOR)):
        if values is not None:
            ax.plot(epochs, values, label=label, color=color, lw=2, marker=marker, ms=4)
    if val is not None and not np.isnan(val).all():
        i = int(np.nanargmin(val) if best == "min" else np.nanargmax(val))
        ax.scatter(
            [epochs[i]],
            [val[i]],
            s=90,
            facecolors="none",
            edgecolors=VAL_COLOR,
            lw=1.6,
            zorder=5,
            label=f"best validation (epoch {epochs[i]:g})",
        )
    ax.set_title(title, loc="left")
    ax.set_xlabel("epoch")
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.legend(loc="best", fontsize=9)


def curves_png(history_rows: Sequence[Mapping[str, Any]]) -> bytes:
    """Loss and accuracy per epoch, training vs validation, as two panels.

    Args:
        history_rows: one mapping per epoch with (some of) ``epoch``, ``loss``,
            ``accuracy``, ``val_loss``, ``val_accuracy``; values may be numbers or the
            strings of ``history.csv``; a missing column is left out of the plot.

    Returns:
        PNG bytes, about 1000x360 CSS pixels.

    Raises:
        ValueError: if ``history_rows`` is empty.
    """
    rows = list(history_rows)
    if not rows:
        raise ValueError("history_rows must hold at least one epoch. Received: 0 rows")
    epochs = _column(rows, "epoch")
    x = epochs if epochs is not None else np.arange(1, len(rows) + 1, dtype=float)
    with _style():
        fig = _figure(10.0, 3.6)
        ax_loss, ax_acc = fig.subplots(1, 2)
        _panel(ax_loss, x, _column(rows, "loss"), _column(rows, "val_loss"), "Loss", "min")
        ax_loss.set_ylabel("cross-entropy")
        _panel(
            ax_acc, x, _column(rows, "accuracy"), _column(rows, "val_accuracy"), "Accuracy", "max"
        )
        ax_acc.yaxis.set_major_formatter(PercentFormatter(1.0, decimals=None))
        return _png(fig)


def lr_find_png(finding: Mapping[str, Any]) -> bytes:
    """The range test's smoothed loss against the learning rate (log scale), the chosen rate
    marked.

    Args:
        finding: ``lr_find.json``'s content: ``lrs``, ``losses``, ``suggestion``, ``rule``.

    Raises:
        ValueError: no points, or ``lrs`` and ``losses`` of different lengths.
    """
    lrs = np.asarray(finding.get("lrs") or [], dtype=float)
    losses = np.asarray(finding.get("losses") or [], dtype=float)
    if not len(lrs) or lrs.shape != losses.shape:
        raise ValueError(
            "lr_find needs as many losses as rates, at least one. "
            f"Received: {len(lrs)} rates, {len(losses)} losses"
        )
    with _style():
        fig = _figure(6.0, 3.4)
        ax = fig.subplots()
        ax.plot(lrs, losses, color=TRAIN_COLOR, lw=2)
        ax.set_xscale("log")
        ax.set_xlabel("learning rate")
        ax.set_ylabel("loss (smoothed)")
        chosen = as_number(finding.get("suggestion"))
        if chosen is not None:
            ax.axvline(chosen, color=VAL_COLOR, linestyle="--", linewidth=1.2,
                       label=f"chosen {chosen:.2g} ({finding.get('rule', '')})")  # fmt: skip
            ax.legend(loc="upper left", fontsize=9)
        top = float(np.nanmax(losses[: max(1, int(len(losses) * 0.8))]))
        low = float(np.nanmin(losses))
        ax.set_ylim(low - 0.05 * abs(low), top + 0.1 * abs(top))  # the tail's blow-up cut off
        ax.set_title("Learning-rate range test", loc="left")
        return _png(fig)


def as_number(value: Any) -> float | None:
    """``value`` as a finite float, or None."""
    try:
        v = float(value)
    except (TypeError, ValueError):
        return None
    return v if math.isfinite(v) else None


# --------------------------------------------------------------------------- confusion


def _check_confusion(cm: Any, class_names: Sequence[str]) -> np.ndarray:
    arr = np.asarray(cm, dtype=float)
    if arr.ndim != 2 or arr.shape[0] != arr.shape[1] or arr.shape[0] == 0:
        raise ValueError(f"cm must be a non-empty square matrix. Received: shape {arr.shape}")
    if len(class_names) != arr.shape[0]:
        raise ValueError(
            f"class_names must name each of the {arr.shape[0]} rows of cm. "
            f"Received: {len(class_names)} names"
        )
    if not np.isfinite(arr).all() or (arr < 0).any():
        raise ValueError(
            "cm must hold non-negative finite counts. Received a negative or NaN value"
        )
    return arr


def _normalised(cm: np.ndarray, normalize: str | None) -> np.ndarray:
    if normalize is None:
        return cm
    if normalize == "true":
        total = cm.sum(axis=1, keepdims=True)
    elif normalize == "pred":
        total = cm.sum(axis=0, keepdims=True)
    elif normalize == "all":
        total = np.full((1, 1), cm.sum())
    else:
        raise ValueError(
            f"normalize must be 'true', 'pred', 'all' or None. Received: normalize={normalize!r}"
        )
    return np.divide(cm, total, out=np.zeros_like(cm), where=total > 0)


def _short(name: str, width: int) -> str:
    name = str(name)
    return name if len(name) <= width else name[: width - 1] + "…"


def _cell_text(ax, cm: np.ndarray, colour: np.ndarray, vmax: float, show_share: bool) -> None:
    n = cm.shape[0]
    size = max(7.0, min(11.0, 13.0 - 0.28 * n))
    for i in range(n):
        for j in range(n):
            count = int(round(cm[i, j]))
            text = f"{count:,}"
            if show_share and count:
                text += f"\n{100 * colour[i, j]:.0f}%"
            if count == 0:
                color = "#a7afba"
            else:
                color = "white" if colour[i, j] > 0.55 * vmax else TEXT_COLOR
            ax.text(
                j, i, text, ha="center", va="center", fontsize=size, color=color, linespacing=1.1
            )


def confusion_png(cm: Any, class_names: Sequence[str], normalize: str | None = "true") -> bytes:
    """A confusion matrix: counts in the cells, colour by the normalised share.

    Args:
        cm: ``(K, K)`` counts, rows = true class, columns = predicted class.
        class_names: the ``K`` class names, in the order of the rows.
        normalize: what the colour shows, as in scikit-learn: ``"true"`` (share of
            each true class, the default), ``"pred"``, ``"all"``, or ``None`` (counts).

    Returns:
        PNG bytes; the figure grows with ``K`` (readable from 2 to about 30 classes;
        beyond 30 the cells carry colour only).

    Raises:
        ValueError: if ``cm`` is not square, non-negative and finite, if
            ``class_names`` does not match it, or if ``normalize`` is unknown.
    """
    counts = _check_confusion(cm, class_names)
    colour = _normalised(counts, normalize)
    n = counts.shape[0]
    vmax = 1.0 if normalize else max(float(colour.max()), 1.0)
    side = min(max(2.8 + 0.36 * n, 4.0), 8.8)  # 8.8 + colour bar fits the page at 1x
    with _style():
        fig = _figure(side + 1.1, side)
        ax = fig.subplots()
        edges = np.arange(n + 1) - 0.5
        mesh = ax.pcolormesh(edges, edges, colour, vmax=vmax, **_MESH)
        ax.set_xlim(-0.5, n - 0.5)
        ax.set_ylim(n - 0.5, -0.5)  # row 0 at the top, as printed
        ax.set_aspect("equal")
        if n <= 30:
            _cell_text(ax, counts, colour, vmax, show_share=normalize is not None and n <= 12)
        _confusion_labels(ax, [_short(c, 18) for c in class_names])
        bar = fig.colorbar(mesh, ax=ax, fraction=0.046, pad=0.03, shrink=0.85)
        bar.set_label(_SHARE_OF[normalize])
        if normalize:
            bar.ax.yaxis.set_major_formatter(PercentFormatter(1.0))
        bar.outline.set_visible(False)
        return _png(fig, tight=True)  # fixed aspect + long labels: grow the canvas to fit


_MESH: dict[str, Any] = {"cmap": "Blues", "vmin": 0.0, "edgecolors": "white", "linewidth": 0.6}
_SHARE_OF = {
    "true": "share of the true class",
    "pred": "share of the predicted class",
    "all": "share of all images",
    None: "images",
}


def _confusion_labels(ax, labels: list[str]) -> None:
    """Class names on both axes (rotated when long), axis titles, no frame."""
    n = len(labels)
    rotate = max(len(s) for s in labels) > 3
    size = max(7.5, min(10.0, 12.0 - 0.2 * n))
    ax.grid(False)
    tilt = {"rotation": 45, "ha": "right"} if rotate else {"rotation": 0, "ha": "center"}
    ax.set_xticks(range(n), labels, fontsize=size, rotation_mode="anchor", **tilt)
    ax.set_yticks(range(n), labels, fontsize=size)
    ax.set_xlabel("predicted class")
    ax.set_ylabel("true class")
    ax.tick_params(length=0)
    for spine in ax.spines.values():
        spine.set_visible(False)


# --------------------------------------------------------------------------- top losses


def _sorted_top(rows: Sequence[Mapping[str, Any]], n: int) -> list[Mapping[str, Any]]:
    required = ("path", "label", "predicted", "probability", "loss")
    for i, row in enumerate(rows):
        missing = [k for k in required if k not in row]
        if missing:
            raise ValueError(
                f"each prediction row needs {', '.join(required)}. "
                f"Received: row {i} without {', '.join(missing)}"
            )

    def loss(row: Mapping[str, Any]) -> float:
        v = float(row["loss"])
        return -math.inf if math.isnan(v) else v

    order = sorted(range(len(rows)), key=lambda i: (-loss(rows[i]), i))
    return [rows[i] for i in order[:n]]


def _tile(ax, image: np.ndarray | None, row: Mapping[str, Any]) -> None:
    ax.grid(False)
    ax.set_xticks([])
    ax.set_yticks([])
    if image is None:
        ax.set_facecolor("#eef0f3")
        text = "\n".join(textwrap.wrap(str(row["path"]), 22, break_on_hyphens=False)[:4])
        ax.text(
            0.5,
            0.5,
            f"{text}\n\n(image not available)",
            ha="center",
            va="center",
            fontsize=7,
            color=MUTED_COLOR,
            transform=ax.transAxes,
            family="DejaVu Sans Mono",
        )
        ax.set_xlim(0, 1)
        ax.set_ylim(0, 1)
    else:
        small = max(image.shape[:2]) < 64
        kw = {"cmap": "gray", "vmin": 0, "vmax": 255} if image.ndim == 2 else {}
        ax.imshow(image, interpolation="nearest" if small else "antialiased", **kw)
    for spine in ax.spines.values():
        spine.set_visible(image is None)
        spine.set_color("#d5dae1")
    true, pred = str(row["label"]), str(row["predicted"])
    labels = f"true {true} / pred {pred}"  # short names share a line, long ones get one each
    if len(labels) > 24:
        labels = f"true {_short(true, 19)}\npred {_short(pred, 19)}"
    title = f"{labels}\np={float(row['probability']):.2f}  loss={float(row['loss']):.2f}"
    ax.set_title(
        title,
        fontsize=9.5,
        fontweight="normal",
        linespacing=1.3,
        color=WRONG_COLOR if true != pred else TEXT_COLOR,
    )


def top_losses_png(
    rows: Sequence[Mapping[str, Any]],
    n: int = 16,
    *,
    image_loader: ImageLoader | None = None,
) -> bytes:
    """The ``n`` predictions with the highest loss as image tiles.

    Each tile is titled ``true LABEL / pred LABEL`` and ``p=PROBABILITY loss=LOSS``
    (red when the prediction is wrong). An image that cannot be loaded (a pseudo-path of
    a named dataset, a moved or corrupt file) becomes a grey tile showing its path.

    Args:
        rows: prediction rows with ``path``, ``label``, ``predicted``, ``probability`` (of
            the predicted class) and ``loss`` (per-sample cross-entropy), as in
            ``predictions.csv``; values may be strings.
        n: how many tiles, at most (the highest losses first).
        image_loader: ``path -> uint8 array (H, W) or (H, W, 3), or None``. Default:
            :class:`cnnkit.report.images.RunImages` (paths as given).

    Returns:
        PNG bytes, 4 tiles a row (up to 6 for more than 16 tiles).

    Raises:
        ValueError: if ``rows`` is empty, a row lacks a field, or ``n`` < 1.
    """
    if isinstance(n, bool) or not isinstance(n, int) or n < 1:
        raise ValueError(f"n must be a positive int. Received: n={n!r}")
    if not rows:
        raise ValueError("rows must hold at least one prediction. Received: 0 rows")
    top = _sorted_top(rows, n)
    load = image_loader or RunImages()
    cols = min(len(top), 4 if len(top) <= 16 else 6)
    nrows = math.ceil(len(top) / cols)
    with _style():
        fig = _figure(TILE_SIZE[0] * cols, TILE_SIZE[1] * nrows)
        axes = np.atleast_1d(fig.subplots(nrows, cols, squeeze=False)).ravel()
        for ax, row in zip(axes, top, strict=False):
            _tile(ax, load(str(row["path"])), row)
        for ax in axes[len(top) :]:
            ax.set_axis_off()
        return _png(fig)


# --------------------------------------------------------------------------- learning curve


def learning_curve_png(summary: Mapping[str, Any]) -> bytes:
    """Validation accuracy against training images (log scale): every point, the fitted power
    law with its 95% band, and the predictions at 2x and 4x the training images.

    Args:
        summary: ``learning_curve.json`` (``points``; ``curve``, ``predictions`` when fitted).

    Returns:
        PNG bytes, about 760x420 CSS pixels.

    Raises:
        ValueError: if ``summary`` holds no points.
    """
    points = list(summary.get("points") or [])
    if not points:
        raise ValueError("a learning curve needs at least one point. Received: 0 points")
    n = np.array([float(p["n_train"]) for p in points])
    acc = np.array([float(p["val_accuracy"]) for p in points])
    with _style():
        fig = _figure(7.6, 4.2)
        ax = fig.subplots()
        curve = list(summary.get("curve") or [])
        if curve:
            x = np.array([c["n_train"] for c in curve], dtype=float)
            ax.fill_between(x, [c["lo"] for c in curve], [c["hi"] for c in curve],
                            color=VAL_COLOR, alpha=0.18, lw=0, label="95% interval")  # fmt: skip
            ax.plot(x, [c["accuracy"] for c in curve], color=VAL_COLOR, lw=2,
                    label="power law a·n^-b + c")  # fmt: skip
        ax.scatter(n, acc, s=22, color=TRAIN_COLOR, zorder=5, label="measured (each run)")
        _predictions(ax, summary.get("predictions") or [])
        ax.set_xscale("log")
        ax.xaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:,.0f}"))  # 1,000 not 10^3
        ax.set_xlabel("training images")
        ax.set_ylabel("validation accuracy")
        ax.yaxis.set_major_formatter(PercentFormatter(1.0, decimals=None))
        ax.set_title("Learning curve", loc="left")
        ax.legend(loc="lower right", fontsize=9)
        return _png(fig)


def _predictions(ax, predictions: Sequence[Mapping[str, Any]]) -> None:
    """The extrapolated accuracies as error bars, labelled with their multiple."""
    for p in predictions:
        if p.get("multiple", 1) <= 1:
            continue
        a, (lo, hi) = float(p["accuracy"]), p["ci"]
        ax.errorbar([p["n_train"]], [a], yerr=[[a - lo], [hi - a]], fmt="D", ms=6, capsize=4,
                    color=WRONG_COLOR, zorder=6)  # fmt: skip
        ax.annotate(f"{p['multiple']}x: {100 * a:.1f}%", (p["n_train"], a),
                    textcoords="offset points", xytext=(-8, 10), ha="right", fontsize=9,
                    color=WRONG_COLOR)  # fmt: skip
