"""What a folder's images are like, from their headers: typical size and colour.

``cnnkit train FOLDER`` trains at the images' own size and colour where the model allows
it (a folder of 64x64 RGB photos trains at 3x64x64, MNIST digits at 1x28x28);
:func:`profile_images` finds both without decoding the pixels (Pillow reads the header).
"""

from __future__ import annotations

import statistics
from collections.abc import Sequence
from dataclasses import dataclass

from PIL import Image, UnidentifiedImageError

GREY_MODES = frozenset({"1", "L", "LA", "La", "I", "I;16", "I;16B", "I;16L", "I;16N", "F"})
"""Pillow modes without colour."""


@dataclass(frozen=True)
class ImageProfile:
    """The typical image of a folder.

    Attributes:
        height, width: median height and width of the images read.
        color_mode: ``grayscale`` when every image read is grey, else ``rgb``.
        probed: how many headers were read (a sample of large folders).
        sizes_vary: whether the images read differ in size.
    """

    height: int
    width: int
    color_mode: str
    probed: int
    sizes_vary: bool


def _grey_palette(im: Image.Image) -> bool:
    palette = im.getpalette() or []
    triples = zip(palette[0::3], palette[1::3], palette[2::3], strict=False)
    return all(r == g == b for r, g, b in triples)


def _header(path: str) -> tuple[int, int, bool] | None:
    """``(height, width, grey)`` from the file's header, or None if it cannot be read."""
    try:
        with Image.open(path) as im:
            grey = im.mode in GREY_MODES or (im.mode == "P" and _grey_palette(im))
            return im.height, im.width, grey
    except (OSError, UnidentifiedImageError, ValueError, Image.DecompressionBombError):
        return None


def profile_images(paths: Sequence[str], sample: int = 256) -> ImageProfile | None:
    """The typical size and colour of ``paths`` (evenly spaced sample of at most ``sample``).

    Returns:
        The profile, or None when no header could be read.
    """
    step = max(1, len(paths) // sample)
    headers = [h for h in (_header(p) for p in paths[::step][:sample]) if h is not None]
    if not headers:
        return None
    heights = [h for h, _, _ in headers]
    widths = [w for _, w, _ in headers]
    grey = all(g for _, _, g in headers)
    return ImageProfile(
        height=int(statistics.median_low(heights)),
        width=int(statistics.median_low(widths)),
        color_mode="grayscale" if grey else "rgb",
        probed=len(headers),
        sizes_vary=len(set(zip(heights, widths, strict=True))) > 1,
    )
