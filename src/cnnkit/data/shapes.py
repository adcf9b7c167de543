"""The ``shapes`` dataset: one coloured circle, square or triangle on a textured background.

Generated (never downloaded) and fully determined by its seed. Each image holds one object at a
random position and size, in a colour chosen to stand out from a random striped, noisy
background; its bounding box is returned, so later stages can check that a heatmap (Grad-CAM)
looks at the object and not at the background.

Beyond the three classes of the named dataset, :func:`make_shapes` draws any of
:data:`SHAPE_KINDS` (``classes=``): cross, ellipse, ring, diamond, star, hexagon. Two disjoint
sets of kinds make a source and a target task that share the domain (rendering, textures,
sizes) but not the classes, the situation of an ImageNet backbone reused on new classes.
"""

from __future__ import annotations

import numpy as np

from cnnkit.data.arrays import ImageArrays, dataset_path

SHAPE_CLASSES = ["circle", "square", "triangle"]
SHAPE_KINDS = [*SHAPE_CLASSES, "cross", "ellipse", "ring", "diamond", "star", "hexagon"]
"""Every kind :func:`make_shapes` can draw; the first three are the named dataset's classes."""


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
    """Object mask of ``SHAPE_KINDS[kind]``; ``yy``/``xx`` are pixel-centre coordinates."""
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
    if kind == 2:  # triangle: equilateral, random rotation
        r, cy, cx = _placed(rng, 0.18, 0.35, h, w)
        return _polygon(_regular(3, r, cy, cx, rng.uniform(0, 2 * np.pi)), yy, xx)
    return _more_kinds(kind, rng, yy, xx)


def _more_kinds(kind: int, rng: np.random.Generator, yy: np.ndarray, xx: np.ndarray) -> np.ndarray:
    """Masks of the kinds beyond the named dataset's three (random size, place, rotation)."""
    h, w = yy.shape
    r, cy, cx = _placed(rng, 0.18, 0.35, h, w)
    turn = rng.uniform(0, 2 * np.pi)
    u = (xx - cx) * np.cos(turn) + (yy - cy) * np.sin(turn)  # coordinates in the object's frame
    v = -(xx - cx) * np.sin(turn) + (yy - cy) * np.cos(turn)
    name = SHAPE_KINDS[kind]
    if name == "cross":  # a plus sign, arms a third of the span wide
        return ((np.abs(u) <= r) & (np.abs(v) <= r / 3)) | ((np.abs(v) <= r) & (np.abs(u) <= r / 3))
    if name == "ellipse":
        return (u / r) ** 2 + (v / (0.5 * r)) ** 2 <= 1
    if name == "ring":
        d2 = u**2 + v**2
        return (d2 <= r * r) & (d2 >= (0.55 * r) ** 2)
    if name == "diamond":  # a rhombus, diagonals r and 0.6 r
        return np.abs(u) / r + np.abs(v) / (0.6 * r) <= 1
    if name == "star":  # five points: the inner pentagon and a triangle on each of its sides
        inner = _regular(5, 0.4 * r, cy, cx, turn)
        mask = _polygon(inner, yy, xx)
        tips = _regular(5, r, cy, cx, turn + np.pi / 5)
        for k in range(5):
            tri = np.array([inner[:, k], tips[:, k], inner[:, (k + 1) % 5]]).T
            mask |= _polygon(tri, yy, xx)
        return mask
    if name == "hexagon":
        return _polygon(_regular(6, r, cy, cx, turn), yy, xx)
    raise ValueError(f"unknown shape kind {kind}")


def _placed(rng: np.random.Generator, lo: float, hi: float, h: int, w: int):
    """A radius (a fraction ``lo..hi`` of the size) and a centre that keeps it inside."""
    r = rng.uniform(lo, hi) * min(h, w)
    return r, rng.uniform(r, h - r), rng.uniform(r, w - r)


def _regular(n: int, r: float, cy: float, cx: float, angle: float) -> np.ndarray:
    """Vertices ``(2, n)`` (x row, y row) of a regular n-gon of circumradius ``r``."""
    a = angle + 2 * np.pi * np.arange(n) / n
    return np.array([cx + r * np.cos(a), cy + r * np.sin(a)])


def _polygon(vertices: np.ndarray, yy: np.ndarray, xx: np.ndarray) -> np.ndarray:
    """Inside a convex polygon: on the same side of every edge as its centroid."""
    vx, vy = vertices
    cx, cy = vx.mean(), vy.mean()
    inside = np.ones(yy.shape, bool)
    for i in range(len(vx)):
        j = (i + 1) % len(vx)
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
    n: int,
    image_size: tuple[int, int] = (64, 64),
    seed: int = 0,
    split: str = "train",
    classes: list[str] | None = None,
) -> ImageArrays:
    """Generate ``n`` images, classes balanced in turn (circle, square, triangle, ...).

    Args:
        n: number of images.
        image_size: ``(height, width)``.
        seed: everything (shape, place, size, colours, texture) follows from it.
        split: the name used in ``file_paths`` (``shapes:SPLIT/INDEX``).
        classes: kinds to draw, in label order, from :data:`SHAPE_KINDS` (default: the
            named dataset's ``circle``, ``square``, ``triangle``).

    Returns:
        :class:`ImageArrays` with ``boxes`` ``(N, 4)`` = ``x0, y0, x1, y1`` in pixels
        (``x1``/``y1`` exclusive): the object's tight bounding box.

    Shape:
        images: ``(N, 3, H, W)`` uint8.
    """
    h, w = image_size
    if n < 0 or h < 8 or w < 8:
        raise ValueError(f"need n >= 0 and image_size >= (8, 8). Received: n={n}, {image_size}")
    names = list(SHAPE_CLASSES if classes is None else classes)
    unknown = sorted(set(names) - set(SHAPE_KINDS))
    if unknown or not names or len(set(names)) != len(names):
        raise ValueError(
            f"classes must be distinct names from {SHAPE_KINDS}. Received: classes={classes!r}"
        )
    kinds = np.array([SHAPE_KINDS.index(c) for c in names])
    rng = np.random.default_rng(seed)
    images = np.empty((n, 3, h, w), np.uint8)
    labels = np.arange(n) % len(names)
    boxes = np.empty((n, 4), np.float32)
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float64)
    for i in range(n):
        bg = _background(rng, yy, xx)
        mask = _mask(int(kinds[labels[i]]), rng, yy + 0.5, xx + 0.5)
        colour = _colour(rng, bg.reshape(-1, 3).mean(0))
        bg[mask] = colour + rng.normal(0, 4, (int(mask.sum()), 3))
        images[i] = np.clip(np.rint(bg), 0, 255).astype(np.uint8).transpose(2, 0, 1)
        boxes[i] = _box(mask)
    paths = [dataset_path("shapes", split, i) for i in range(n)]
    return ImageArrays(images, labels, names, paths, [], boxes)
