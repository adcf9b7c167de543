"""A power law fitted to a learning curve, and a bootstrap interval for its extrapolation.

Validation error falls with the number of training images ``n`` roughly as a power law
(Hestness et al. 2017, "Deep learning scaling is predictable, empirically")::

    err(n) = a * n**-b + c        a >= 0, b in [B_MIN, B_MAX], 0 <= c <= 1

``c`` is the error that more images of the same kind would not remove. For a fixed ``b`` the
model is linear in ``(a, c)``, so the fit is a one-dimensional search over ``b`` with
``(a, c)`` solved by least squares at each value (variable projection): no starting values,
no local minimum to fall into, numpy only.

The interval (:func:`bootstrap`) is a two-way percentile bootstrap. Each replicate resamples
the validation images (the same draw for every point, since every point was scored on the
same images) and, within each training-set size, the repeats (the points of one size are
independent draws: their own subset and seed); it refits and predicts. It covers the
sampling error of the validation images and the variation between subsets and seeds, given
that the power law holds; how far the power law itself holds beyond the measured sizes is
not in it.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

B_MIN, B_MAX = 0.01, 2.0
"""The range searched for the exponent ``b`` (observed learning curves: about 0.05-1)."""
_B_GRID = np.geomspace(B_MIN, B_MAX, 481)  # 1.1% apart: the bootstrap's refits use the grid
_CHUNK = 50  # bootstrap replicates refitted at once (arrays of 50 x 481 x points)


@dataclass(frozen=True)
class PowerLaw:
    """``err(n) = a * n**-b + c``, with the root mean square error of the fit."""

    a: float
    b: float
    c: float
    rmse: float = 0.0

    def error(self, n: np.ndarray | float) -> np.ndarray:
        """The expected error at ``n`` training images."""
        return self.a * np.asarray(n, dtype=float) ** -self.b + self.c

    def accuracy(self, n: np.ndarray | float) -> np.ndarray:
        """``1 - error(n)``."""
        return 1.0 - self.error(n)


def _solve(x: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Least-squares ``(a, c)`` of ``y ~ a * x + c`` for each row of ``x``, with a >= 0 and
    0 <= c <= 1, and the sum of squared residuals.

    Shape:
        x: ``(..., G, P)`` (``G`` candidate exponents, ``P`` points); y: ``(..., 1, P)``
        or ``(P,)``; the results ``(..., G)``.
    """
    xm, ym = x.mean(-1, keepdims=True), y.mean(-1, keepdims=True)
    sxx = ((x - xm) ** 2).sum(-1)
    sxy = ((x - xm) * (y - ym)).sum(-1)
    xx, xy, ym = (x * x).sum(-1), (x * y).sum(-1), np.broadcast_to(ym[..., 0], sxx.shape)
    a = np.where(sxx > 0, sxy / np.maximum(sxx, 1e-300), 0.0)
    c = ym - a * xm[..., 0]
    low = c < 0  # through the origin: the best a with c = 0
    a = np.where(low, xy / np.maximum(xx, 1e-300), a)
    c = np.where(low, 0.0, c)
    high = c > 1  # through (x=0, y=1)
    a = np.where(high, (xy - x.sum(-1)) / np.maximum(xx, 1e-300), a)
    c = np.where(high, 1.0, c)
    flat = a < 0  # error rising with n: the best constant
    a = np.where(flat, 0.0, a)
    c = np.where(flat, np.clip(ym, 0.0, 1.0), c)
    sse = ((a[..., None] * x + c[..., None] - y) ** 2).sum(-1)
    return a, c, sse


def _sse_at(b: float, n: np.ndarray, y: np.ndarray) -> float:
    return float(_solve(n[None, :] ** -b, y)[2][0])


def fit_power_law(n: Sequence[float] | np.ndarray, error: Sequence[float] | np.ndarray) -> PowerLaw:
    """Least-squares fit of ``err(n) = a * n**-b + c`` to learning-curve points.

    Args:
        n: training images of each point (repeats of one size are separate points).
        error: validation error (``1 - accuracy``) of each point.

    Returns:
        The fitted :class:`PowerLaw`.

    Raises:
        ValueError: fewer than three distinct ``n``, a non-positive ``n``, or an error
            outside [0, 1].

    Example:
        >>> law = fit_power_law([100, 200, 400, 800], [0.30, 0.22, 0.165, 0.125])
        >>> round(float(law.accuracy(1600)), 2)
        0.9
    """
    n_arr, y = _check(n, error)
    i, sse = _grid_fit(n_arr, y)
    lo, hi = _B_GRID[max(i - 1, 0)], _B_GRID[min(i + 1, len(_B_GRID) - 1)]
    b = _golden(lambda v: _sse_at(v, n_arr, y), float(lo), float(hi))
    if _sse_at(b, n_arr, y) > sse:
        b = float(_B_GRID[i])
    a, c, s = _solve(n_arr[None, :] ** -b, y)
    return PowerLaw(float(a[0]), float(b), float(c[0]), float(np.sqrt(s[0] / len(y))))


def _grid_fit(n: np.ndarray, y: np.ndarray) -> tuple[int, float]:
    """Index of the best exponent on the grid, and its sum of squared residuals."""
    sse = _solve(n[None, :] ** -_B_GRID[:, None], y)[2]  # (G, P) candidates
    i = int(np.argmin(sse))
    return i, float(sse[i])


def _grid_accuracy(n: np.ndarray, y: np.ndarray, at: np.ndarray) -> np.ndarray:
    """The accuracy at ``at`` of the best fit on the exponent grid, for many curves at once
    (the bootstrap's refits).

    Shape:
        n, y: ``(R, P)``, one resampled curve per row; at: ``(A,)``; returns ``(R, A)``.
    """
    x = n[:, None, :] ** -_B_GRID[None, :, None]  # (R, G, P)
    a, c, sse = _solve(x, y[:, None, :])  # (R, G) each
    best = np.argmin(sse, axis=1)
    rows = np.arange(len(n))
    b, a, c = _B_GRID[best], a[rows, best], c[rows, best]
    return 1.0 - (a[:, None] * at[None, :] ** -b[:, None] + c[:, None])


def _golden(f, lo: float, hi: float, iters: int = 40) -> float:
    """The minimum of a unimodal ``f`` on ``[lo, hi]`` by golden-section search."""
    r = (np.sqrt(5) - 1) / 2
    x1, x2 = hi - r * (hi - lo), lo + r * (hi - lo)
    f1, f2 = f(x1), f(x2)
    for _ in range(iters):
        if f1 <= f2:
            hi, x2, f2 = x2, x1, f1
            x1 = hi - r * (hi - lo)
            f1 = f(x1)
        else:
            lo, x1, f1 = x1, x2, f2
            x2 = lo + r * (hi - lo)
            f2 = f(x2)
    return (lo + hi) / 2


def _check(n, error) -> tuple[np.ndarray, np.ndarray]:
    n_arr = np.asarray(n, dtype=float).ravel()
    y = np.asarray(error, dtype=float).ravel()
    if n_arr.shape != y.shape:
        raise ValueError(
            f"n and error must have one value per point. Received: {n_arr.size} and {y.size}"
        )
    if not np.isfinite(n_arr).all() or (n_arr <= 0).any():
        raise ValueError(f"n must be positive counts. Received: n={n_arr.tolist()}")
    if not np.isfinite(y).all() or (y < 0).any() or (y > 1).any():
        raise ValueError(f"error must be in [0, 1]. Received: error={y.tolist()}")
    if len(np.unique(n_arr)) < 3:
        raise ValueError(
            "a power law needs points at three or more training-set sizes. "
            f"Received: sizes {sorted(set(n_arr.tolist()))}"
        )
    return n_arr, y


@dataclass(frozen=True)
class Bootstrap:
    """Percentile intervals from :func:`bootstrap`.

    Attributes:
        n: where the accuracy was predicted.
        lo, hi: the interval's ends at each ``n`` (accuracy).
        replicates: how many refits.
        level: the coverage asked for (0.95).
    """

    n: np.ndarray
    lo: np.ndarray
    hi: np.ndarray
    replicates: int
    level: float


def bootstrap(
    n: Sequence[float] | np.ndarray,
    correct: np.ndarray,
    at: Sequence[float] | np.ndarray,
    *,
    replicates: int = 1000,
    level: float = 0.95,
    seed: int = 0,
) -> Bootstrap:
    """Percentile interval of the predicted accuracy at ``at`` by the two-way bootstrap.

    Args:
        n: training images of each point; points with the same ``n`` are repeats.
        correct: whether each point's model got each validation image right.
        at: training-set sizes to predict the accuracy at.
        replicates: bootstrap refits.
        level: coverage of the interval.
        seed: seeds the resampling.

    Returns:
        The :class:`Bootstrap` intervals (accuracy, same order as ``at``).

    Shape:
        correct: ``(P, V)``, ``P`` points by ``V`` validation images, the same images in the
        same order in every row.
    """
    n_arr = np.asarray(n, dtype=float).ravel()
    hits = np.asarray(correct, dtype=float)
    if hits.ndim != 2 or hits.shape[0] != n_arr.size or hits.shape[1] == 0:
        raise ValueError(
            f"correct must be (points, validation images) with {n_arr.size} rows. "
            f"Received: shape {hits.shape}"
        )
    if not 0 < level < 1:
        raise ValueError(f"level must be in (0, 1). Received: level={level!r}")
    at_arr = np.asarray(at, dtype=float).ravel()
    rng = np.random.default_rng(seed)
    groups = [np.flatnonzero(n_arr == v) for v in np.unique(n_arr)]
    preds = np.empty((replicates, at_arr.size))
    for start in range(0, replicates, _CHUNK):
        k = min(_CHUNK, replicates - start)
        images = rng.integers(0, hits.shape[1], (k, hits.shape[1]))  # (k, V)
        points = np.concatenate([g[rng.integers(0, g.size, (k, g.size))] for g in groups], 1)
        err = 1.0 - np.take_along_axis(hits[points], images[:, None, :], 2).mean(2)  # (k, P)
        preds[start : start + k] = _grid_accuracy(n_arr[points], err, at_arr)
    tail = (1 - level) / 2 * 100
    lo, hi = np.percentile(preds, [tail, 100 - tail], axis=0)
    return Bootstrap(at_arr, lo, hi, replicates, level)
