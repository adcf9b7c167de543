"""GBLUP against its closed form; the other baselines fit and predict sensibly."""

from __future__ import annotations

import numpy as np
import pytest

from cnnkit.genomics.baselines import GBLUP, ElasticNet, Lasso, Ridge, vanraden_scale
from cnnkit.genomics.preprocess import SnpPreprocessor


@pytest.fixture
def data():
    rng = np.random.default_rng(1)
    x = rng.integers(0, 3, size=(40, 30)).astype(np.float32)
    y = x[:, :5].sum(1) + rng.normal(size=40)
    return x, y


def test_gblup_equals_the_closed_form(data):
    x, y = data
    pre = SnpPreprocessor().fit(x[:30])
    z_tr, z_te = pre.transform(x[:30]).astype(float), pre.transform(x[30:]).astype(float)
    k = vanraden_scale(pre.means)
    g_tr, g_te = z_tr @ z_tr.T / k, z_te @ z_tr.T / k
    # h2 on the population scale: lambda = c (1 - h2) / h2, c = mean(diag G) - mean(G)
    c = np.mean(np.diag(g_tr)) - np.mean(g_tr)
    hinv = np.linalg.inv(g_tr + c * (1 - 0.4) / 0.4 * np.eye(30))
    mu = hinv.sum(0) @ y[:30] / hinv.sum()  # the GLS intercept (BLUE)
    expected = mu + g_te @ hinv @ (y[:30] - mu)
    got = GBLUP(h2=0.4, means=pre.means).fit(z_tr, y[:30]).predict(z_te)
    np.testing.assert_allclose(got, expected, rtol=1e-6, atol=1e-8)


def test_gblup_leave_one_out_residuals_match_refitting(data):
    x, y = data
    pre = SnpPreprocessor().fit(x)
    z = pre.transform(x).astype(float)
    model = GBLUP(h2=0.5, means=pre.means).fit(z, y)
    for i in (0, 7, 23):
        keep = np.arange(len(y)) != i
        zk = z[keep]
        # the same variance ratio, intercept and marker effects refitted without row i
        g = zk @ zk.T / model.k
        hinv = np.linalg.inv(g + model.lam * np.eye(len(y) - 1))
        mu = hinv.sum(0) @ y[keep] / hinv.sum()
        pred = mu + (z[i] @ zk.T / model.k) @ hinv @ (y[keep] - mu)
        assert model.loo_residuals[i] == pytest.approx(y[i] - pred, rel=1e-6)


def test_gblup_h2_is_about_one_scale_free_for_inbred_01_markers():
    """0/1-coded inbred lines: VanRaden's G has mean self-relationship ~0.5, and h2 must not
    be off by that factor (the old grid h2 was 1 / (1 + lambda))."""
    rng = np.random.default_rng(4)
    x = rng.integers(0, 2, size=(300, 400)).astype(np.float32)
    z = SnpPreprocessor().fit(x).transform(x)
    g = z.astype(float) @ rng.normal(size=400)
    y = g / g.std() * np.sqrt(0.5) + rng.normal(size=300) * np.sqrt(0.5)
    pre = SnpPreprocessor().fit(x)
    model = GBLUP(means=pre.means).fit(z, y)
    k_mat = z.astype(float) @ z.T.astype(float) / model.k
    assert np.mean(np.diag(k_mat)) < 0.7  # the scale the old h2 ignored
    assert abs(model.h2 - 0.5) < 3 * model.vc.h2_se
    assert 1 / (1 + model.lam) > model.h2 + 0.05  # the old definition overstates it


def test_gblup_reml_h2_matches_its_lambda_and_rejects_bad_h2(data):
    x, y = data
    z = SnpPreprocessor().fit(x).transform(x)
    model = GBLUP().fit(z, y)
    c = model.vc.kernel_scale
    assert 0.0 < model.h2 < 1.0 and model.lam == pytest.approx(c * (1 - model.h2) / model.h2)
    with pytest.raises(ValueError, match="h2 must be in"):
        GBLUP(h2=1.5)


@pytest.mark.parametrize("cls", [Ridge, Lasso, ElasticNet])
def test_linear_baselines_predict_the_signal(cls):
    rng = np.random.default_rng(2)
    x = rng.integers(0, 3, size=(120, 30)).astype(np.float32)
    y = x[:, :5].sum(1) + 0.5 * rng.normal(size=120)
    pre = SnpPreprocessor().fit(x[:100])
    model = cls().fit(pre.transform(x[:100]), y[:100])
    pred = model.predict(pre.transform(x[100:]))
    assert pred.shape == (20,) and np.corrcoef(pred, y[100:])[0, 1] > 0.8
