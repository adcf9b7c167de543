"""Validation images for the top-losses tiles: image files, else named-dataset entries.

``predictions.csv`` holds file paths for folder data and pseudo-paths ``NAME:SPLIT/INDEX``
(``mnist-5k:train/12``) for named datasets; both are read back by the data stage's
:class:`cnnkit.data.ImageLookup` (the decoder training used: EXIF, 16-bit, every mode), then
shrunk to a thumbnail.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
from PIL import Image

from cnnkit.data.lookup import ImageLookup

THUMBNAIL = 160
"""Longest side of a tile's image, in pixels."""


def to_hwc(image: np.ndarray) -> np.ndarray:
    """``(C, H, W)`` uint8 -> ``(H, W)`` for one channel, ``(H, W, 3)`` otherwise.

    Shape:
        image: ``(C, H, W)`` with C in 1, 3, 4 (alpha is dropped).
    """
    if image.shape[0] == 1:
        return image[0]
    return np.ascontiguousarray(image[:3].transpose(1, 2, 0))  # (C, H, W) -> (H, W, 3)


def thumbnail(image: np.ndarray, side: int = THUMBNAIL) -> np.ndarray:
    """``(H, W)`` or ``(H, W, 3)`` uint8 shrunk to at most ``side`` pixels a side."""
    if max(image.shape[:2]) <= side:
        return image
    im = Image.fromarray(image)
    im.thumbnail((side, side))
    return np.asarray(im, dtype=np.uint8)


class RunImages:
    """``path -> uint8 (H, W) or (H, W, 3) thumbnail, or None``: the ``image_loader`` of
    :func:`cnnkit.report.plots.top_losses_png`.

    Args:
        base_dirs: folders that relative file paths are also looked up under.
        grayscale: read images as one channel (a grayscale run) instead of RGB.
    """

    def __init__(self, base_dirs: Sequence[str | Path] = (), grayscale: bool = False) -> None:
        mode = "grayscale" if grayscale else "rgb"
        self._lookup = ImageLookup(None, mode, base_dirs=base_dirs)

    def __call__(self, path: str) -> np.ndarray | None:
        image = self._lookup(path)
        return None if image is None else thumbnail(to_hwc(image))
