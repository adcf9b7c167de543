"""Pictures of explanations as PNG bytes: channel grids, filter grids, heatmap overlays.

Matplotlib draws the labelled figures through its object API (a ``Figure`` on an Agg canvas:
no pyplot, no global backend switched, so a notebook that imports cnnkit keeps its own); the
overlay is a plain image the size of the input, blended with Pillow.
"""

from __future__ import annotations

import io
import math
from collections.abc import Mapping

import matplotlib
import numpy as np
import torch
import torch.nn.functional as F
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.cm import ScalarMappable
from matplotlib.colors import Normalize
from matplotlib.figure import Figure
from PIL import Image, ImageDraw


def new_figure(**kwargs) -> Figure:
    """A matplotlib ``Figure`` on its own Agg canvas (``figsize``, ``dpi`` as matplotlib's)."""
    fig = Figure(**kwargs)
    FigureCanvasAgg(fig)
    return fig


def figure_png(fig: Figure) -> bytes:
    """A matplotlib figure as PNG bytes."""
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=100, bbox_inches="tight")
    return buf.getvalue()


def tile(images: np.ndarray, cols: int, pad: int = 1, fill: float = 1.0) -> np.ndarray:
    """Lay out images in a grid with ``pad`` pixels of ``fill`` between them.

    Shape:
        images: (N, h, w) or (N, h, w, 3). Returns: (rows*(h+pad)-pad, cols*(w+pad)-pad[, 3]).
    """
    n, h, w = images.shape[:3]
    cols = max(1, min(cols, n))
    rows = math.ceil(n / cols)
    out = np.full((rows * (h + pad) - pad, cols * (w + pad) - pad, *images.shape[3:]), fill)
    for i, img in enumerate(images):
        r, c = divmod(i, cols)
        out[r * (h + pad) : r * (h + pad) + h, c * (w + pad) : c * (w + pad) + w] = img
    return out


def _standardise(maps: np.ndarray) -> np.ndarray:
    """Per-channel display scaling as in the lecture: mean 0.5, 0.25 per std, clipped.

    Shape:
        maps: (C, h, w) -> (C, h, w) in 0..1.
    """
    mean = maps.mean(axis=(1, 2), keepdims=True)
    std = maps.std(axis=(1, 2), keepdims=True)
    return np.clip((maps - mean) / np.where(std > 0, std, 1.0) * 0.25 + 0.5, 0, 1)


def activation_grid_png(
    acts: Mapping[str, torch.Tensor],
    *,
    index: int = 0,
    max_channels: int = 32,
    cols: int = 16,
    cmap: str = "viridis",
    title: str = "",
) -> bytes:
    """One channel grid per layer for image ``index`` of the batch (the lecture figure), with
    a colour bar for the per-channel scale and ``title`` above.

    Args:
        acts: ``{layer: activation}`` as returned by :func:`cnnkit.explain.activations`.
        index: which image of the batch to draw.
        max_channels: the first this many channels of each layer are drawn.
        cols: channels per row.
        cmap: matplotlib colormap.
        title: the figure's title (e.g. the image and the model).

    Returns:
        PNG bytes.

    Shape:
        each activation: (B, C, H, W); other ranks are skipped.
    """
    maps = {n: a[index].float().cpu().numpy() for n, a in acts.items() if a.dim() == 4}
    if not maps:
        raise ValueError("acts must hold at least one 4D (B, C, H, W) activation. Received none")
    grids = {n: tile(_standardise(m[:max_channels]), cols, fill=np.nan) for n, m in maps.items()}
    heights = [g.shape[0] / g.shape[1] * 12 + 0.5 for g in grids.values()]
    fig = new_figure(figsize=(12, sum(heights)))
    axes = fig.subplots(len(grids), 1, squeeze=False)
    for ax, (name, grid) in zip(axes[:, 0], grids.items(), strict=True):
        c, h, w = maps[name].shape
        ax.imshow(grid, cmap=cmap, vmin=0, vmax=1, interpolation="nearest", aspect="equal")
        shown = f" (first {max_channels})" if c > max_channels else ""
        ax.set_title(f"{name}: {c} channels x {h} x {w}{shown}", fontsize=10, loc="left")
        ax.axis("off")
    label = "activation, each channel scaled: 0.5 = its mean, 0.25 per standard deviation"
    _colorbar(fig, list(axes[:, 0]), cmap, label)
    if title:
        _title_above(fig, list(axes[:, 0]), title)
    return figure_png(fig)


def _colorbar(
    fig, axes, cmap: str, label: str, *, below: bool = False, vmin: float = 0.0, vmax: float = 1.0
) -> None:
    """A colour bar for values ``vmin``..``vmax`` in ``cmap``, in a place of its own (so the
    images keep their size): right of ``axes``, or ``below`` them across their width."""
    boxes = [ax.get_position() for ax in axes]
    left, right = min(b.x0 for b in boxes), max(b.x1 for b in boxes)
    bottom, top = min(b.y0 for b in boxes), max(b.y1 for b in boxes)
    inch_w, inch_h = 1 / fig.get_figwidth(), 1 / fig.get_figheight()
    if below:
        width = min(right - left, 4.0 * inch_w)
        rect = ((left + right - width) / 2, bottom - 0.35 * inch_h, width, 0.12 * inch_h)
    else:
        height = min(top - bottom, 4.0 * inch_h)
        rect = (right + 0.15 * inch_w, (top + bottom - height) / 2, 0.15 * inch_w, height)
    bar = fig.colorbar(
        ScalarMappable(norm=Normalize(vmin, vmax), cmap=cmap),
        cax=fig.add_axes(rect),
        orientation="horizontal" if below else "vertical",
    )
    bar.set_label(label, fontsize=9)
    bar.ax.tick_params(labelsize=8)


def _title_above(fig, axes, title: str, fontsize: int = 12) -> None:
    """``title`` left-aligned just above the top row of ``axes`` (and their own titles)."""
    boxes = [ax.get_position() for ax in axes]
    left, top = min(b.x0 for b in boxes), max(b.y1 for b in boxes)
    fig.text(left, top + 0.35 / fig.get_figheight(), title, fontsize=fontsize, va="bottom")


def image_grid_png(
    images: torch.Tensor,
    titles: list[str] | None = None,
    *,
    cols: int = 8,
    suptitle: str = "",
    colorbar_label: str = "",
) -> bytes:
    """A labelled grid of images in 0..1 (filter patterns, raw kernels), drawn large enough to
    read (cells of 1.6 inches or more, a grid at least 3.2 inches wide: 320 px at 100 dpi);
    grey images get a colour bar labelled ``colorbar_label`` below the grid (colour images
    show their own colours).

    Shape:
        images: (N, C, H, W) with C = 1 or 3, values in 0..1.
    """
    arr = images.detach().float().clamp(0, 1).cpu().numpy()
    n = len(arr)
    cols = max(1, min(cols, n))
    rows = math.ceil(n / cols)
    cell = max(1.6, 3.2 / cols)
    fig = new_figure(figsize=(cell * cols, (cell + 0.15) * rows))
    axes = fig.subplots(rows, cols, squeeze=False)
    for i, ax in enumerate(axes.flat):
        ax.axis("off")
        if i >= n:
            continue
        img = arr[i]
        if img.shape[0] == 1:
            ax.imshow(img[0], cmap="gray", vmin=0, vmax=1, interpolation="nearest")
        else:
            ax.imshow(img[:3].transpose(1, 2, 0), interpolation="nearest")
        if titles:
            ax.set_title(titles[i], fontsize=8)
    if n and arr.shape[1] == 1 and colorbar_label:
        _colorbar(fig, list(axes.ravel()), "gray", colorbar_label, below=True)
    if suptitle:
        _title_above(fig, list(axes.ravel()), suptitle, fontsize=10)
    return figure_png(fig)


def _hwc_uint8(image: np.ndarray | torch.Tensor) -> np.ndarray:
    """An image as (H, W, 3) uint8, from (C, H, W) or (H, W[, C]) uint8 with C = 1 or 3."""
    arr = image.detach().cpu().numpy() if isinstance(image, torch.Tensor) else np.asarray(image)
    if arr.dtype != np.uint8:
        raise TypeError(f"image must be uint8. Received: dtype={arr.dtype}")
    if arr.ndim == 3 and arr.shape[0] in (1, 3) and arr.shape[2] not in (1, 3):
        arr = arr.transpose(1, 2, 0)  # (C, H, W) -> (H, W, C)
    if arr.ndim == 2:
        arr = arr[:, :, None]
    if arr.ndim != 3 or arr.shape[2] not in (1, 3):
        raise ValueError(
            f"image must be (C, H, W) or (H, W, C) with 1 or 3 channels. "
            f"Received: shape={arr.shape}"
        )
    return np.repeat(arr, 3, axis=2) if arr.shape[2] == 1 else arr


def resize_map(cam: torch.Tensor | np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """Bilinear resize of a (h, w) map to ``size`` = (H, W), min-max scaled to 0..1."""
    if isinstance(cam, torch.Tensor):
        cam = cam.detach().float().cpu()
    t = torch.as_tensor(np.asarray(cam, dtype=np.float32))[None, None]
    t = F.interpolate(t, size=size, mode="bilinear")[0, 0]
    lo, hi = t.min(), t.max()
    return ((t - lo) / (hi - lo).clamp_min(1e-12)).numpy()


def overlay(
    image: np.ndarray | torch.Tensor,
    cam: torch.Tensor | np.ndarray,
    *,
    alpha: float = 0.45,
    cmap: str = "jet",
) -> np.ndarray:
    """Heatmap ``cam`` (any size, resized to the image) blended over ``image``.

    Returns:
        (H, W, 3) uint8.
    """
    base = _hwc_uint8(image)
    heat = matplotlib.colormaps[cmap](resize_map(cam, base.shape[:2]))[..., :3] * 255
    return np.clip((1 - alpha) * base + alpha * heat, 0, 255).astype(np.uint8)


def overlay_png(
    image: np.ndarray | torch.Tensor,
    cam: torch.Tensor | np.ndarray,
    *,
    alpha: float = 0.45,
    cmap: str = "jet",
    peak: tuple[int, int] | None = None,
) -> bytes:
    """:func:`overlay` as PNG bytes, the size of ``image``; ``peak`` (x, y) gets a cross.

    Shape:
        image: (C, H, W) or (H, W, C) uint8. cam: (h, w), any scale (min-max scaled here).
    """
    img = Image.fromarray(overlay(image, cam, alpha=alpha, cmap=cmap))
    if peak is not None:
        x, y = peak
        r = max(2, min(img.size) // 25)
        draw = ImageDraw.Draw(img)
        draw.line([(x - r, y), (x + r, y)], fill=(255, 255, 255), width=max(1, r // 3))
        draw.line([(x, y - r), (x, y + r)], fill=(255, 255, 255), width=max(1, r // 3))
    buf = io.BytesIO()
    img.save(buf, format="PNG")
    return buf.getvalue()


CAM_LABEL = "Grad-CAM: 0 = no evidence, 1 = strongest"


def cam_figure_png(
    image: np.ndarray | torch.Tensor,
    cam: torch.Tensor | np.ndarray,
    *,
    title: str,
    peak: tuple[int, int] | None = None,
    note: str | None = None,
    alpha: float = 0.45,
    cmap: str = "jet",
    min_side: int = 256,
) -> bytes:
    """The heatmap over the image as a person reads it: a title, a colour bar, and small
    images (28x28 digits) enlarged by a whole factor, pixels kept sharp, to at least
    ``min_side`` pixels; large images are drawn pixel for pixel.

    With a ``note`` (see :func:`cnnkit.explain.gradcam.cam_note`) the map locates nothing:
    the image is shown without colour and the note written over it, instead of a heatmap of
    one uniform colour.

    Args:
        image: (C, H, W) or (H, W, C) uint8, C = 1 or 3.
        cam: (h, w) map, any scale (min-max scaled here).
        title: drawn above the image.
        peak: (x, y) in ``image`` pixels, marked with a cross.
        note: drawn instead of the heatmap when given.

    Returns:
        PNG bytes.
    """
    base = _hwc_uint8(image)
    shown = base if note is not None else overlay(base, cam, alpha=alpha, cmap=cmap)
    h, w = shown.shape[:2]
    scale = max(1, math.ceil(min_side / min(h, w)))
    big = np.repeat(np.repeat(shown, scale, axis=0), scale, axis=1)  # nearest: crisp pixels
    if peak is not None and note is None:
        big = _cross(big, (peak[0] * scale + scale // 2, peak[1] * scale + scale // 2))
    dpi = 100
    fig = new_figure(figsize=(big.shape[1] / dpi, big.shape[0] / dpi), dpi=dpi)
    ax = fig.add_axes((0.0, 0.0, 1.0, 1.0))  # the image fills the axes, pixel for pixel
    ax.imshow(big, interpolation="nearest")
    ax.axis("off")
    ax.set_title(title, fontsize=10)
    if note is not None:
        box = {"facecolor": "white", "alpha": 0.85, "edgecolor": "none"}
        ax.text(0.5, 0.5, note, transform=ax.transAxes, ha="center", va="center", fontsize=11,
                wrap=True, bbox=box)  # fmt: skip
    else:
        bar_ax = fig.add_axes((1.03, 0.0, 0.05, 1.0))  # beside the image, not over it
        mappable = ScalarMappable(norm=Normalize(0, 1), cmap=cmap)
        bar = fig.colorbar(mappable, cax=bar_ax)
        bar.set_label(CAM_LABEL, fontsize=9)
        bar.ax.tick_params(labelsize=8)
    return figure_png(fig)


def _cross(rgb: np.ndarray, at: tuple[int, int]) -> np.ndarray:
    """``rgb`` (H, W, 3) uint8 with a white cross centred on ``at`` = (x, y)."""
    img = Image.fromarray(rgb)
    x, y = at
    r = max(3, min(img.size) // 25)
    draw = ImageDraw.Draw(img)
    draw.line([(x - r, y), (x + r, y)], fill=(255, 255, 255), width=max(1, r // 3))
    draw.line([(x, y - r), (x, y + r)], fill=(255, 255, 255), width=max(1, r // 3))
    return np.asarray(img)
