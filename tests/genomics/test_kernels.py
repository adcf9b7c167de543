"""Relationship matrices: the Gaussian kernel's median rule and reading a user's K."""

from __future__ import annotations

import numpy as np
import pytest

from cnnkit.genomics.kernels import (
    gaussian_kernel,
    median_distance,
    read_relationship,
    squared_distances,
)


def test_squared_distances_and_the_median_rule():
    rng = np.random.default_rng(0)
    z = rng.normal(size=(30, 8))
    d = squared_distances(z)
    brute = ((z[:, None, :] - z[None, :, :]) ** 2).sum(-1)
    np.testing.assert_allclose(d, brute, atol=1e-9)
    med = median_distance(d)
    assert med == pytest.approx(np.median(brute[np.triu_indices(30, 1)]))
    k = gaussian_kernel(d, 1.0, med)
    # the median rule: a pair at the median distance is related by exp(-1)
    i, j = np.argwhere(np.isclose(d, np.median(d[np.triu_indices(30, 1)])))[0]
    assert k[i, j] == pytest.approx(np.exp(-1.0))
    assert np.allclose(np.diag(k), 1.0) and np.linalg.eigvalsh(k).min() > -1e-9


def _r_style(path, k, ids):
    """A matrix with dimnames as R's write.csv writes it (quoted, unnamed first column)."""
    head = '"",' + ",".join(f'"{s}"' for s in ids)
    rows = [f'"{s}",' + ",".join(f"{v:.10g}" for v in row) for s, row in zip(ids, k, strict=True)]
    path.write_text(head + "\n" + "\n".join(rows) + "\n")


def test_read_relationship_orders_by_id_and_checks(tmp_path):
    rng = np.random.default_rng(1)
    a = rng.normal(size=(5, 9))
    k = a @ a.T / 9
    ids = ["l1", "l2", "l3", "l4", "l5"]
    order = [3, 0, 4, 1, 2]
    _r_style(tmp_path / "k.csv", k[np.ix_(order, order)], [ids[i] for i in order])
    got = read_relationship(tmp_path / "k.csv", ids[:4], 4)  # K may hold more lines
    np.testing.assert_allclose(got, k[:4, :4], rtol=1e-9)
    np.savetxt(tmp_path / "plain.txt", k)
    np.testing.assert_allclose(read_relationship(tmp_path / "plain.txt", None, 5), k, rtol=1e-9)
    with pytest.raises(ValueError, match="5 rows, but the genotypes have 4"):
        read_relationship(tmp_path / "plain.txt", None, 4)
    with pytest.raises(ValueError, match="1 genotyped samples are not in K: 'l9'"):
        read_relationship(tmp_path / "k.csv", ["l1", "l9"], 2)
    bad = k.copy()
    bad[0, 1] += 0.5
    _r_style(tmp_path / "asym.csv", bad, ids)
    with pytest.raises(ValueError, match="asym.csv: K must be symmetric"):
        read_relationship(tmp_path / "asym.csv", ids, 5)
    neg = k - 2 * np.eye(5)
    _r_style(tmp_path / "neg.csv", neg, ids)
    with pytest.raises(ValueError, match="neg.csv: K must be positive semi-definite"):
        read_relationship(tmp_path / "neg.csv", ids, 5)
    (tmp_path / "nan.txt").write_text("1 nan\nnan 1\n")
    with pytest.raises(ValueError, match="nan.txt: relationship values must be finite"):
        read_relationship(tmp_path / "nan.txt", None, 2)
    with pytest.raises(FileNotFoundError, match="relationship matrix file not found"):
        read_relationship(tmp_path / "none.csv", ids, 5)
