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
    lam = (1 - 0.4) / 0.4
    g_tr, g_te = z_tr @ z_tr.T / k, z_te @ z_tr.T / k
    mu = y[:30].mean()
    expected = mu + g_te @ np.linalg.solve(g_tr + lam * np.eye(30), y[:30] - mu)
    got = GBLUP(h2=0.4, means=pre.means).fit(z_tr, y[:30]).predict(z_te)
    np.testing.assert_allclose(got, expected, rtol=1e-6, atol=1e-8)


def test_gblup_leave_one_out_residuals_match_refitting(data):
    x, y = data
    pre = SnpPreprocessor().fit(x)
    z = pre.transform(x).astype(float)
    model = GBLUP(h2=0.5, means=pre.means).fit(z, y)
    k, lam = vanraden_scale(pre.means), 1.0
    g = z @ z.T / k
    yc = y - y.mean()  # the closed form centres y once on all rows
    for i in (0, 7, 23):
        keep = np.arange(len(y)) != i
        alpha = np.linalg.solve(g[np.ix_(keep, keep)] + lam * np.eye(len(y) - 1), yc[keep])
        assert model.loo_residuals[i] == pytest.approx(yc[i] - g[i, keep] @ alpha, rel=1e-6)


def test_gblup_chooses_lambda_inside_the_grid_and_rejects_bad_h2(data):
    x, y = data
    z = SnpPreprocessor().fit(x).transform(x)
    model = GBLUP().fit(z, y)
    assert 0.0 < model.h2 < 1.0 and model.lam == pytest.approx((1 - model.h2) / model.h2)
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
