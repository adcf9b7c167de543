"""Plot functions return valid, deterministic PNGs of sensible size and leave matplotlib alone."""

from __future__ import annotations

import io

import matplotlib
import numpy as np
import pytest
from PIL import Image

from cnnkit.report.plots import (
    DPI,
    TILE_SIZE,
    confusion_png,
    curves_png,
    top_losses_png,
)


def _open(png: bytes) -> Image.Image:
    im = Image.open(io.BytesIO(png))
    im.load()
    assert im.format == "PNG"
    return im


def _history(n: int = 5) -> list[dict]:
    return [
        {
            "epoch": e,
            "loss": 1 / e,
            "accuracy": 1 - 0.4 / e,
            "val_loss": 1.1 / e,
            "val_accuracy": 1 - 0.45 / e,
        }
        for e in range(1, n + 1)
    ]


def _predictions(n: int) -> list[dict]:
    return [
        {
            "path": f"mnist-5k:train:{i}",
            "label": str(i % 3),
            "predicted": str((i + 1) % 3),
            "probability": 0.5 + i / (4 * n),
            "loss": float(i),
        }
        for i in range(n)
    ]


def test_curves_png_is_a_two_panel_sized_png():
    im = _open(curves_png(_history()))
    assert im.size == (10 * DPI, round(3.6 * DPI))  # 10 x 3.6 inches at DPI


def test_curves_png_is_deterministic_and_reads_csv_strings():
    rows = [{k: str(v) for k, v in r.items()} for r in _history()]
    assert curves_png(rows) == curves_png(_history())  # "0.5" and 0.5 plot the same, twice


def test_curves_png_draws_what_it_has():
    train_only = [
        {"epoch": 1, "loss": 0.9, "accuracy": 0.6, "val_loss": "", "val_accuracy": ""},
        {"epoch": 2, "loss": 0.7, "accuracy": 0.7, "val_loss": "", "val_accuracy": ""},
    ]
    partial = _open(curves_png(train_only))
    single = _open(curves_png(_history(1)))  # a single epoch still plots
    assert partial.size == single.size
    assert partial.tobytes() != single.tobytes()


def test_curves_png_rejects_an_empty_history():
    with pytest.raises(ValueError, match="history_rows"):
        curves_png([])


def test_plots_leave_matplotlib_state_untouched():
    before = dict(matplotlib.rcParams)
    backend = matplotlib.get_backend()
    with matplotlib.rc_context({"lines.linewidth": 7.0, "font.size": 3.0}):
        styled = curves_png(_history())
    assert dict(matplotlib.rcParams) == before
    assert matplotlib.get_backend() == backend
    assert styled == curves_png(_history())  # the caller's style does not leak in


@pytest.mark.parametrize("k", [2, 10, 20])
def test_confusion_png_grows_with_the_classes(k):
    rng = np.random.default_rng(k)
    cm = rng.integers(0, 5, (k, k)) + np.diag(rng.integers(20, 40, k))
    im = _open(confusion_png(cm, [f"class {i}" for i in range(k)]))
    w, h = im.size
    assert 400 <= w / 2 <= 1400 and 400 <= h / 2 <= 1400  # CSS pixels (2x PNG)
    assert w > h  # room for the colour bar
    if k == 20:
        small = _open(confusion_png(np.eye(2, dtype=int), ["a", "b"]))
        assert small.size[0] < w


def test_confusion_png_keeps_long_labels_inside_the_image():
    names = [f"class_{i:02d}_long_name" for i in range(20)]
    im = _open(confusion_png(np.eye(20, dtype=int) * 5 + 1, names)).convert("L")
    ink = np.asarray(im) < 250
    rows, cols = np.where(ink.any(axis=1))[0], np.where(ink.any(axis=0))[0]
    # a white margin on every side: no tick label or axis label was cut off
    assert cols.min() > 0 and rows.min() > 0
    assert cols.max() < im.size[0] - 1 and rows.max() < im.size[1] - 1


def test_confusion_png_normalize_changes_colour_only_where_it_should():
    cm = [[8, 2], [1, 9]]
    row = confusion_png(cm, ["a", "b"])
    assert row == confusion_png(cm, ["a", "b"], normalize="true")
    assert row != confusion_png(cm, ["a", "b"], normalize=None)
    _open(confusion_png([[0, 0], [0, 0]], ["a", "b"]))  # an empty row must not divide by 0


@pytest.mark.parametrize(
    ("cm", "names", "match"),
    [
        ([[1, 2, 3]], ["a"], "square"),
        ([[1, 0], [0, 1]], ["a"], "class_names"),
        ([[1, -1], [0, 1]], ["a", "b"], "non-negative"),
        ([], [], "square"),
    ],
)
def test_confusion_png_rejects_bad_input(cm, names, match):
    with pytest.raises(ValueError, match=match):
        confusion_png(cm, names)


def test_confusion_png_rejects_an_unknown_normalize():
    with pytest.raises(ValueError, match="normalize"):
        confusion_png([[1, 0], [0, 1]], ["a", "b"], normalize="rows")


def test_top_losses_png_shows_the_highest_losses_in_order():
    seen: list[str] = []

    def loader(path: str):
        seen.append(path)
        return None

    im = _open(top_losses_png(_predictions(20), n=6, image_loader=loader))
    assert seen == [f"mnist-5k:train:{i}" for i in (19, 18, 17, 16, 15, 14)]
    w, h = TILE_SIZE
    assert im.size == (round(4 * w * DPI), round(2 * h * DPI))  # 4 columns, 2 rows


def test_top_losses_png_uses_images_when_they_load():
    rows = _predictions(3)
    white = np.full((28, 28), 255, np.uint8)
    with_images = np.asarray(_open(top_losses_png(rows, image_loader=lambda p: white)).convert("L"))
    placeholders = np.asarray(_open(top_losses_png(rows, image_loader=lambda p: None)).convert("L"))
    assert with_images.shape == placeholders.shape
    assert (with_images == 255).mean() > (placeholders == 255).mean()


def test_top_losses_png_rejects_bad_input():
    with pytest.raises(ValueError, match="rows"):
        top_losses_png([])
    with pytest.raises(ValueError, match="n must"):
        top_losses_png(_predictions(2), n=0)
    with pytest.raises(ValueError, match="loss"):
        top_losses_png([{"path": "a.png", "label": "a", "predicted": "b", "probability": 0.5}])
