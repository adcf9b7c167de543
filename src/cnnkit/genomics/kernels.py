"""Relationship matrices for the kernel methods: VanRaden's G, the Gaussian kernel (RKHS), and
a user-supplied matrix (a pedigree A or any K) read from a file.

Every function takes centred genotypes ``z`` of shape ``(N, L)`` (see
:class:`cnnkit.genomics.preprocess.SnpPreprocessor`); ``z2`` gives a second set of rows for
the relationships between new and training individuals.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from cnnkit.genomics.io import _few, _read_rows, _row_ids


def vanraden_scale(means: np.ndarray) -> float:
    """VanRaden's ``k = 2 * sum p (1 - p)`` from mean dosages ``means = 2p``."""
    p = np.clip(np.asarray(means, dtype=np.float64) / 2.0, 0.0, 1.0)
    return float(max(2.0 * np.sum(p * (1.0 - p)), 1e-12))


def vanraden_g(z: np.ndarray, k: float, z2: np.ndarray | None = None) -> np.ndarray:
    """Genomic relationship ``Z2 Z' / k`` from centred genotypes ``Z`` ``(N, L)``.

    Returns:
        ``(N, N)``, or ``(M, N)`` between the rows of ``z2`` ``(M, L)`` and of ``z``.
    """
    z = z.astype(np.float64)
    other = z if z2 is None else z2.astype(np.float64)
    return other @ z.T / k


def squared_distances(z: np.ndarray, z2: np.ndarray | None = None) -> np.ndarray:
    """Squared Euclidean distances between genotype rows, ``(N, N)`` or ``(M, N)``."""
    z = z.astype(np.float64)
    other = z if z2 is None else z2.astype(np.float64)
    sq, sq2 = np.sum(z * z, axis=1), np.sum(other * other, axis=1)
    return np.clip(sq2[:, None] + sq[None, :] - 2.0 * other @ z.T, 0.0, None)


def median_distance(d: np.ndarray) -> float:
    """The median squared distance between distinct training individuals (the bandwidth unit)."""
    iu = np.triu_indices(len(d), 1)
    return float(max(np.median(d[iu]), 1e-12)) if iu[0].size else 1.0


def gaussian_kernel(d: np.ndarray, bandwidth: float, median: float) -> np.ndarray:
    """``exp(-bandwidth * D / median)`` for squared distances ``D``.

    ``bandwidth = 1`` is the median rule: individuals at the median distance of the training
    set are related by ``exp(-1)``.
    """
    return np.exp(-bandwidth * d / median)


def read_relationship(path: str | Path, ids: list[str] | None, n: int) -> np.ndarray:
    """Read a square relationship matrix (e.g. a pedigree A) and order it like the genotypes.

    The file is a CSV/TSV whose header and first column hold the ids (R's ``write.csv`` of a
    matrix with dimnames: the header leaves the first column unnamed), or a plain whitespace
    matrix without ids (rows in the genotype order).

    Args:
        path: the file.
        ids: the genotype sample ids in order (None: genotypes without ids, match by order).
        n: the number of genotyped samples.

    Returns:
        Shape ``(n, n)``, rows and columns in the genotype order.

    Raises:
        FileNotFoundError: no such file.
        ValueError: not square, ids differ between rows and columns, genotyped ids missing,
            non-numeric or non-finite values, not symmetric, or not positive semi-definite.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"relationship matrix file not found: {path}")
    rows, _ = _read_rows(path)
    if _all_numbers(rows[0]):
        k, k_ids = _numeric(rows, path, 1), None
    else:
        header, body = rows[0], rows[1:]
        col_ids = header[1:] if len(header) == len(body[0]) else header
        k_ids = [r[0] for r in body]
        if col_ids != k_ids:
            raise ValueError(f"{path}: the column ids must equal the row ids, in the same order")
        k = _numeric([r[1:] for r in body], path, 2)
    if k.shape[0] != k.shape[1]:
        raise ValueError(f"{path}: a relationship matrix must be square. Received: {k.shape}")
    if k_ids is None or ids is None:
        if len(k) != n:
            raise ValueError(
                f"{path}: {len(k)} rows, but the genotypes have {n} samples (matched by order)"
            )
        k_ids, ids = _row_ids(n), _row_ids(n)
    index = {s: i for i, s in enumerate(k_ids)}
    missing = [s for s in ids if s not in index]
    if missing:
        raise ValueError(f"{path}: {len(missing)} genotyped samples are not in K: {_few(missing)}")
    order = [index[s] for s in ids]
    k = k[np.ix_(order, order)]
    _check_relationship(k, path)
    return k


def _all_numbers(tokens: list[str]) -> bool:
    try:
        [float(t) for t in tokens]
    except ValueError:
        return False
    return True


def _numeric(cells: list[list[str]], path: Path, first_line: int) -> np.ndarray:
    width = len(cells[0])
    bad = [i + first_line for i, r in enumerate(cells) if len(r) != width]
    if bad:
        raise ValueError(f"{path}: ragged rows, expected {width} values: lines {bad[:5]}")
    try:
        k = np.array(cells, dtype=np.float64)
    except ValueError as e:
        raise ValueError(f"{path}: relationship values must be numbers ({e})") from None
    if not np.isfinite(k).all():
        raise ValueError(f"{path}: relationship values must be finite (found NaN or infinity)")
    return k


def _check_relationship(k: np.ndarray, path: Path) -> None:
    scale = float(np.max(np.abs(k))) or 1.0
    asym = float(np.max(np.abs(k - k.T)))
    if asym > 1e-6 * scale:
        raise ValueError(f"{path}: K must be symmetric; largest |K - K'| = {asym:.3g}")
    low = float(np.linalg.eigvalsh((k + k.T) / 2)[0])
    if low < -1e-6 * scale * len(k):
        raise ValueError(
            f"{path}: K must be positive semi-definite; its smallest eigenvalue is {low:.3g}"
        )
