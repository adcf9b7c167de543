"""``preview_grid``: the lecture's "same image, many augmentations" figure, as PNG bytes."""

from __future__ import annotations

import io
import math
from typing import Any

import numpy as np
import torch
from PIL import Image

_GAP = 2
_MIN_CELL = 96  # small images (28x28 digits) are enlarged (nearest) so the grid is readable


def _as_uint8_tensor(images: Any) -> torch.Tensor:
    x = torch.as_tensor(np.asarray(images)) if not isinstance(images, torch.Tensor) else images
    if x.ndim == 3:
        x = x.unsqueeze(0)
    if x.ndim != 4 or x.shape[0] == 0:
        raise ValueError(
            f"images must be (N, C, H, W) with N >= 1. Received shape {tuple(x.shape)}"
        )
    if x.dtype != torch.uint8:
        x = x.float().round().clamp(0, 255).to(torch.uint8)
    return x.cpu()


def augmented_cells(images: Any, augment: Any, n: int = 16, seed: int = 0) -> torch.Tensor:
    """``n`` augmented copies; image ``i * N // n`` feeds cell ``i`` (one row per image).

    Shape:
        images: ``(N, C, H, W)``; returns ``(n, C, H, W)`` uint8.
    """
    x = _as_uint8_tensor(images)
    if not isinstance(n, int) or n < 1:
        raise ValueError(f"n must be a positive int. Received: n={n!r}")
    pick = torch.tensor([i * len(x) // n for i in range(n)])
    batch = x[pick]
    if augment is None:
        return batch
    gen = torch.Generator().manual_seed(int(seed))
    return augment(batch, generator=gen)


def grid_image(cells: torch.Tensor, columns: int | None = None) -> Image.Image:
    """Tile uint8 ``(n, C, H, W)`` cells into one Pillow image with white gaps."""
    n, c, h, w = cells.shape
    cols = columns or math.ceil(math.sqrt(n))
    rows = math.ceil(n / cols)
    scale = max(1, math.ceil(_MIN_CELL / max(h, w)))
    ch, cw = h * scale, w * scale
    canvas = np.full((rows * (ch + _GAP) + _GAP, cols * (cw + _GAP) + _GAP, 3), 255, np.uint8)
    arr = cells.numpy()
    if c == 1:
        arr = np.repeat(arr, 3, axis=1)
    arr = arr[:, :3].transpose(0, 2, 3, 1)  # (n, C, H, W) -> (n, H, W, 3)
    arr = arr.repeat(scale, axis=1).repeat(scale, axis=2)
    for i in range(n):
        r, k = divmod(i, cols)
        y, x = _GAP + r * (ch + _GAP), _GAP + k * (cw + _GAP)
        canvas[y : y + ch, x : x + cw] = arr[i]
    return Image.fromarray(canvas)


def preview_grid(
    images: Any, augment: Any = None, n: int = 16, seed: int = 0, columns: int | None = None
) -> bytes:
    """A PNG grid of ``n`` augmented versions of ``images`` (one row per image).

    Args:
        images: uint8 (or 0..255 float) images, numpy or torch; pass one image for the
            lecture's "same image, many augmentations" figure.
        augment: a callable ``augment(batch, generator=g)`` such as :class:`Augment` (None:
            the images as they are).
        n: number of cells.
        seed: seeds the augmentation draws.
        columns: cells per row (default: about square).

    Returns:
        PNG file bytes.

    Shape:
        images: ``(N, C, H, W)`` or ``(C, H, W)``.
    """
    cells = augmented_cells(images, augment, n, seed)
    buf = io.BytesIO()
    grid_image(cells, columns).save(buf, "PNG")
    return buf.getvalue()
