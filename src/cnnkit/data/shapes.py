"""The ``shapes`` dataset: one coloured circle, square or triangle on a textured background.

Generated (never downloaded) and fully determined by its seed. Each image holds one object at a
random position and size, in a colour chosen to stand out from a random striped, noisy
background; its bounding box is returned, so later stages can check that a heatmap (Grad-CAM)
looks at the object and not at the background.
"""

from __future__ import annotations

import numpy as np

from cnnkit.data.arrays import ImageArrays

SHAPE_CLASSES = ["circle", "square", "triangle"]


def _background(rng: np.random.Generator, yy: np.ndarray, xx: np.ndarray) -> np.ndarray:
    """Random base colour + two sinusoidal gratings + pixel noise, ``(H, W, 3)`` float."""
    h, w = yy.shape
    base = rng.uniform(40, 215, 3)
    tex = np.zeros((h, w))
    for _ in range(2):
        angle, freq, phase = rng.uniform(0, np.pi), rng.uniform(0.05, 0.4), rng.uniform(0, 6.3)
        tex += np.sin(freq * (xx * np.cos(angle) + yy * np.sin(angle)) + phase)
    tint = rng.uniform(0.5, 1.0, 3)
    img = base + 18 * tex[..., None] * tint + rng.normal(0, 8, (h, w, 3))
    return img


def _mask(kind: int, rng: np.random.Generator, yy: np.ndarray, xx: np.ndarray) -> np.ndarray:
    """Object mask; ``yy``/``xx`` are pixel-centre coordinates."""
    h, w = yy.shape
    s = min(h, w)
    if kind == 0:  # circle
        r = rng.uniform(0.12, 0.28) * s
        cy, cx = rng.uniform(r, h - r), rng.uniform(r, w - r)
        return (xx - cx) ** 2 + (yy - cy) ** 2 <= r * r
    if kind == 1:  # square
        side = rng.uniform(0.25, 0.55) * s
        y0, x0 = rng.uniform(0, h - side), rng.uniform(0, w - side)
        return (xx >= x0) & (xx < x0 + side) & (yy >= y0) & (yy < y0 + side)
    r = rng.uniform(0.18, 0.35) * s  # triangle: equilateral, random rotation
    cy, cx = rng.uniform(r, h - r), rng.uniform(r, w - r)
    a = rng.uniform(0, 2 * np.pi) + np.array([0, 2 * np.pi / 3, 4 * np.pi / 3])
    vx, vy = cx + r * np.cos(a), cy + r * np.sin(a)
    inside = np.ones((h, w), bool)
    for i in range(3):
        j = (i + 1) % 3
        cross = (vx[j] - vx[i]) * (yy - vy[i]) - (vy[j] - vy[i]) * (xx - vx[i])
        side = (vx[j] - vx[i]) * (cy - vy[i]) - (vy[j] - vy[i]) * (cx - vx[i])
        inside &= cross * side >= 0
    return inside


def _colour(rng: np.random.Generator, background_mean: np.ndarray) -> np.ndarray:
    """A saturated colour at least 120 away (RGB distance) from the background mean."""
    for _ in range(50):
        c = rng.uniform(0, 255, 3)
        c[rng.integers(3)] = rng.choice([0.0, 255.0])  # saturate one channel
        if np.linalg.norm(c - background_mean) >= 120:
            return c
    return 255.0 - background_mean


def _box(mask: np.ndarray) -> list[float]:
    ys, xs = np.nonzero(mask)
    return [float(xs.min()), float(ys.min()), float(xs.max() + 1), float(ys.max() + 1)]


def make_shapes(
    n: int, image_size: tuple[int, int] = (64, 64), seed: int = 0, split: str = "train"
) -> ImageArrays:
    """Generate ``n`` images, classes balanced in turn (circle, square, triangle, ...).

    Args:
        n: number of images.
        image_size: ``(height, width)``.
        seed: everything (shape, place, size, colours, texture) follows from it.
        split: the name used in ``file_paths`` (``shapes:SPLIT/INDEX``).

    Returns:
        :class:`ImageArrays` with ``boxes`` ``(N, 4)`` = ``x0, y0, x1, y1`` in pixels
        (``x1``/``y1`` exclusive): the object's tight bounding box.

    Shape:
        images: ``(N, 3, H, W)`` uint8.
    """
    h, w = image_size
    if n < 0 or h < 8 or w < 8:
        raise ValueError(f"need n >= 0 and image_size >= (8, 8). Received: n={n}, {image_size}")
    rng = np.random.default_rng(seed)
    images = np.empty((n, 3, h, w), np.uint8)
    labels = np.arange(n) % 3
    boxes = np.empty((n, 4), np.float32)
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float64)
    for i in range(n):
        bg = _background(rng, yy, xx)
        mask = _mask(int(labels[i]), rng, yy + 0.5, xx + 0.5)
        colour = _colour(rng, bg.reshape(-1, 3).mean(0))
        bg[mask] = colour + rng.normal(0, 4, (int(mask.sum()), 3))
        images[i] = np.clip(np.rint(bg), 0, 255).astype(np.uint8).transpose(2, 0, 1)
        boxes[i] = _box(mask)
    paths = [f"shapes:{split}/{i}" for i in range(n)]
    return ImageArrays(images, labels, list(SHAPE_CLASSES), paths, [], boxes)
