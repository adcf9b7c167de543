"""GWAS: per-marker GLS against a dense computation, a planted QTL, and the kinship correction."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import stats

from cnnkit.genomics.gwas import association, plots_png, top_hits
from cnnkit.genomics.kernels import vanraden_g, vanraden_scale
from cnnkit.genomics.mixed import KernelBLUP
from cnnkit.genomics.preprocess import SnpPreprocessor


def _structured(n=300, p=400, seed=0, qtl=None):
    """Two subpopulations with different allele frequencies and trait means (no QTL but
    ``qtl``): a scan without kinship finds the markers that differ between them."""
    rng = np.random.default_rng(seed)
    pop = np.repeat([0, 1], n // 2)
    base = rng.uniform(0.1, 0.9, size=p)
    freq = np.clip(
        base[None, :] + np.where(pop[:, None] == 0, -1, 1) * rng.uniform(0, 0.25, p), 0.02, 0.98
    )
    x = rng.binomial(2, freq).astype(np.float32)
    z = x - x.mean(0)
    poly = z @ rng.normal(size=p) / np.sqrt(p * 0.4)  # polygenic background
    y = 1.5 * pop + poly + rng.normal(size=n)
    if qtl is not None:
        y += 0.8 * z[:, qtl]
    return x, y


def test_each_test_is_the_dense_gls_t_test():
    x, y = _structured(n=120, p=60, seed=1)
    res = association(x, y)
    pre = SnpPreprocessor().fit(x)
    z = pre.transform(x).astype(float)
    g = vanraden_g(z, vanraden_scale(pre.means))
    delta = KernelBLUP().fit(g, y).delta
    hinv = np.linalg.inv(g + delta * np.eye(len(y)))
    for j in (0, 17, 59):
        xj = np.column_stack([np.ones(len(y)), z[:, j]])
        c = np.linalg.inv(xj.T @ hinv @ xj)
        b = c @ xj.T @ hinv @ y
        r = y - xj @ b
        sigma2 = r @ hinv @ r / (len(y) - 2)
        se = np.sqrt(sigma2 * c[1, 1])
        assert res.effect[j] == pytest.approx(b[1], rel=1e-8)
        assert res.se[j] == pytest.approx(se, rel=1e-8)
        assert res.p[j] == pytest.approx(2 * stats.t.sf(abs(b[1] / se), len(y) - 2), rel=1e-6)


def test_planted_qtl_is_the_top_hit_and_significant():
    x, y = _structured(seed=2, qtl=123)
    res = association(x, y)
    ids = [f"snp{j}" for j in range(x.shape[1])]
    top = top_hits(res, ids, k=3)
    assert top[0]["snp_id"] == "snp123" and top[0]["p"] < res.threshold
    assert top[0]["effect"] > 0


def test_the_kinship_term_removes_the_inflation_of_population_structure():
    x, y = _structured(seed=3)
    naive = association(x, y, kinship=False)
    corrected = association(x, y)
    assert naive.lambda_gc > 1.5, naive.lambda_gc
    assert 0.8 < corrected.lambda_gc < 1.2, corrected.lambda_gc


def test_monomorphic_markers_are_nan_and_plots_are_pngs():
    x, y = _structured(n=80, p=30, seed=4)
    x[:, 5] = 1.0
    res = association(x, y)
    assert np.isnan(res.p[5]) and np.isfinite(np.delete(res.p, 5)).all()
    assert res.threshold == pytest.approx(0.05 / 29)
    manhattan, qq = plots_png(res)
    assert manhattan[:8] == qq[:8] == b"\x89PNG\r\n\x1a\n"
    with pytest.raises(ValueError, match="one value per line"):
        association(x, y[:-1])
