"""The report's Grad-CAM gallery: correct and wrong predictions per class, with overlays."""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np
import torch
from torch import nn

from cnnkit.explain.gradcam import cam_note, gradcam
from cnnkit.explain.plots import _hwc_uint8, figure_png, new_figure, overlay


def gradcam_gallery(
    model: nn.Module,
    images: np.ndarray | torch.Tensor,
    labels: Sequence[int] | np.ndarray | torch.Tensor,
    preds: Sequence[int] | np.ndarray | torch.Tensor,
    class_names: Sequence[str],
    *,
    preprocess: Callable[[np.ndarray], torch.Tensor] | None = None,
    per_class: int = 2,
    method: str = "gradcam",
    target_layer: str | None = None,
) -> bytes:
    """A grid with one row per class: up to ``per_class`` correct, then up to ``per_class``
    wrong predictions of that (true) class, each with its Grad-CAM overlay for the
    predicted class. Images are taken in their order in ``images``.

    Args:
        model: the trained classifier.
        images: uint8 validation images at the model's input size.
        labels: true class per image.
        preds: predicted class per image.
        class_names: class index -> name.
        preprocess: uint8 batch -> normalised float batch (e.g. ``LoadedRun.preprocess``);
            None = divide by 255.
        per_class: correct and wrong examples per class (each).
        method: ``gradcam``, ``gradcam++`` or ``hirescam``.
        target_layer: None = automatic (card's ``target_layer``, else last spatial).

    Returns:
        PNG bytes.

    Shape:
        images: (N, C, H, W). labels, preds: (N,).

    Raises:
        ValueError: lengths differ, or there are no images.
    """
    imgs = images.cpu().numpy() if isinstance(images, torch.Tensor) else np.asarray(images)
    y, p = np.asarray(labels).reshape(-1), np.asarray(preds).reshape(-1)
    if imgs.ndim != 4 or not len(imgs) or len(imgs) != len(y) or len(y) != len(p):
        raise ValueError(
            "images (N, C, H, W), labels (N,) and preds (N,) must be non-empty and agree in N. "
            f"Received: images {imgs.shape}, labels {y.shape}, preds {p.shape}"
        )
    rows = _pick(y, p, len(class_names), per_class)
    chosen = [i for row in rows for i in row if i is not None]
    if not chosen:
        raise ValueError("no image has a label among class_names; nothing to draw")
    prep = preprocess or (lambda a: torch.as_tensor(a).float() / 255)
    cams = _cams(model, prep, imgs, chosen, method, target_layer, class_names)
    return _draw(imgs, y, p, class_names, rows, cams)


def _pick(y: np.ndarray, p: np.ndarray, k: int, per_class: int) -> list[list[int | None]]:
    """Per class: ``per_class`` correct indices then ``per_class`` wrong (None pads)."""
    rows = []
    for c in range(k):
        right = np.flatnonzero((y == c) & (p == c))[:per_class].tolist()
        wrong = np.flatnonzero((y == c) & (p != c))[:per_class].tolist()
        rows.append(_pad(right, per_class) + _pad(wrong, per_class))
    return rows


def _pad(idx: list[int], n: int) -> list[int | None]:
    return [*idx, *([None] * (n - len(idx)))]


def _cams(model, prep, imgs, chosen, method, target_layer, class_names, batch: int = 32):
    """For each chosen index: the Grad-CAM overlay (H, W, 3), the predicted probability and
    the note that replaces the heatmap when the map locates nothing (else None)."""
    out: dict[int, tuple[np.ndarray, float, str | None]] = {}
    for s in range(0, len(chosen), batch):
        idx = chosen[s : s + batch]
        res = gradcam(model, prep(imgs[idx]), target_layer=target_layer, method=method)
        for j, i in enumerate(idx):
            label = int(res.labels[j])
            prob = float(res.probabilities[j, label])
            name = class_names[label] if label < len(class_names) else str(label)
            note = cam_note(res.cam[j], name)
            shown = _hwc_uint8(imgs[i]) if note else overlay(imgs[i], res.upsampled[j])
            out[i] = (shown, prob, note)
    return out


def _draw(imgs, y, p, class_names, rows, cams) -> bytes:
    ncols = len(rows[0])
    size = 1.9
    height = size * len(rows) + 0.4
    fig = new_figure(figsize=(size * ncols, height))
    axes = fig.subplots(len(rows), ncols, squeeze=False)
    # Matplotlib's default top margin is a fraction of the height (12%): inches of blank
    # space on a tall gallery. Keep the title band a fixed 0.4 inch instead.
    fig.subplots_adjust(top=1 - 0.4 / height, bottom=0.1 / height, hspace=0.25, wspace=0.05)
    half = ncols // 2
    for r, row in enumerate(rows):
        for c, i in enumerate(row):
            ax = axes[r, c]
            ax.set_xticks([])
            ax.set_yticks([])
            for spine in ax.spines.values():
                spine.set_visible(i is not None)
                spine.set_color("tab:green" if c < half else "tab:red")
            if c == 0:
                ax.set_ylabel(class_names[r], fontsize=9)
            if i is None:
                continue
            img, prob, note = cams[i]
            ax.imshow(img, interpolation="nearest")
            name = class_names[p[i]] if 0 <= p[i] < len(class_names) else str(p[i])
            ax.set_title(f"pred {name} {prob:.0%}", fontsize=8)
            if note:  # a heatmap of one colour would say nothing; say why there is none
                box = {"facecolor": "white", "alpha": 0.85, "edgecolor": "none", "pad": 1}
                ax.text(0.5, 0.5, note.replace(" for ", "\nfor "), transform=ax.transAxes,
                        ha="center", va="center", fontsize=6, bbox=box)  # fmt: skip
    fig.suptitle(
        f"Grad-CAM: {half} correct (green) and {half} wrong (red) per true class",
        fontsize=10,
        y=1 - 0.1 / height,
    )
    return figure_png(fig)
