"""REML through one eigendecomposition against a dense, independent computation."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy.optimize import minimize

from cnnkit.genomics.mixed import KernelBLUP, kernel_scale, reml


def _data(n=120, p=200, seed=0, fixed=False):
    rng = np.random.default_rng(seed)
    z = rng.integers(0, 2, size=(n, p)).astype(float)
    z -= z.mean(0)
    k = z @ z.T / p
    x = np.ones((n, 1))
    if fixed:
        x = np.column_stack([x, rng.integers(0, 2, n), rng.normal(size=n)])
    y = x @ np.arange(1, x.shape[1] + 1) + z @ rng.normal(size=p) * 0.15 + rng.normal(size=n)
    return k, y, x


def _dense_neg_reml(theta, k, y, x):
    """-2 REML log-likelihood from V itself (slogdet + explicit inverse), no eigenvectors."""
    s2g, s2e = np.exp(theta)
    v = s2g * k + s2e * np.eye(len(y))
    vinv = np.linalg.inv(v)
    xvx = x.T @ vinv @ x
    pm = vinv - vinv @ x @ np.linalg.solve(xvx, x.T @ vinv)
    q = len(y) - x.shape[1]
    return (
        q * math.log(2 * math.pi)
        + np.linalg.slogdet(v)[1]
        + np.linalg.slogdet(xvx)[1]
        + float(y @ pm @ y)
    )


@pytest.mark.parametrize("fixed", [False, True])
def test_reml_matches_a_dense_optimisation(fixed):
    k, y, x = _data(fixed=fixed)
    ours = KernelBLUP().fit(k, y, x)
    res = minimize(_dense_neg_reml, x0=[0.0, 0.0], args=(k, y, x), method="Nelder-Mead",
                   options={"xatol": 1e-9, "fatol": 1e-11, "maxiter": 4000})  # fmt: skip
    s2g, s2e = np.exp(res.x)
    assert ours.vc.sigma_g2 == pytest.approx(s2g, rel=1e-3)
    assert ours.vc.sigma_e2 == pytest.approx(s2e, rel=1e-3)
    assert ours.vc.loglik == pytest.approx(-0.5 * res.fun, abs=1e-5)


def test_blues_blups_loo_and_reliability_match_the_mixed_model_equations():
    k, y, x = _data(n=60, fixed=True, seed=3)
    m = KernelBLUP().fit(k, y, x)
    s2g, s2e = m.vc.sigma_g2, m.vc.sigma_e2
    n, q = k.shape[0], x.shape[1]
    # Henderson's equations with Z = I: [[X'X, X'], [X, I + K^-1 s2e/s2g]] [b; u] = [X'y; y]
    kinv = np.linalg.inv(k + 1e-9 * np.eye(n))
    lhs = np.block([[x.T @ x, x.T], [x, np.eye(n) + kinv * s2e / s2g]])
    sol = np.linalg.solve(lhs, np.concatenate([x.T @ y, y]))
    np.testing.assert_allclose(m.b, sol[:q], rtol=1e-5, atol=1e-7)
    np.testing.assert_allclose(k @ m.alpha, sol[q:], rtol=1e-4, atol=1e-6)
    # PEV = s2e * C22 (inverse of the coefficient matrix); reliability = 1 - PEV / (s2g K_ii)
    pev = s2e * np.diag(np.linalg.inv(lhs))[q:]
    np.testing.assert_allclose(m.reliability(k, np.diag(k)), 1 - pev / (s2g * np.diag(k)),
                               rtol=1e-4, atol=1e-6)  # fmt: skip
    # leave-one-out at the same variance ratio, fixed effects refitted
    for i in (0, 17, 42):
        keep = np.arange(n) != i
        h = k[np.ix_(keep, keep)] + m.delta * np.eye(n - 1)
        hinv = np.linalg.inv(h)
        xk = x[keep]
        b = np.linalg.solve(xk.T @ hinv @ xk, xk.T @ hinv @ y[keep])
        pred = x[i] @ b + k[i, keep] @ hinv @ (y[keep] - xk @ b)
        assert m.loo_residuals[i] == pytest.approx(y[i] - pred, rel=1e-6)


def test_h2_is_on_the_population_scale_and_its_se_matches_the_dense_information():
    k, y, x = _data(fixed=True, seed=5)
    m = KernelBLUP().fit(k, y, x)
    # scaling K leaves h2 (and the fit) unchanged; s2g scales inversely
    m2 = KernelBLUP().fit(0.46 * k, y, x)
    assert m2.vc.h2 == pytest.approx(m.vc.h2, rel=1e-5)
    assert m2.vc.sigma_g2 == pytest.approx(m.vc.sigma_g2 / 0.46, rel=1e-4)
    c = kernel_scale(k)
    assert m.vc.h2 == pytest.approx(c * m.vc.sigma_g2 / (c * m.vc.sigma_g2 + m.vc.sigma_e2))
    # expected information from explicit P, delta method
    s2g, s2e = m.vc.sigma_g2, m.vc.sigma_e2
    v = s2g * k + s2e * np.eye(len(y))
    vinv = np.linalg.inv(v)
    pm = vinv - vinv @ x @ np.linalg.solve(x.T @ vinv @ x, x.T @ vinv)
    mats = (k, np.eye(len(y)))
    info = 0.5 * np.array([[np.trace(pm @ a @ pm @ b) for b in mats] for a in mats])
    t = c * s2g + s2e
    grad = np.array([c * s2e, -c * s2g]) / t**2
    assert m.vc.h2_se == pytest.approx(math.sqrt(grad @ np.linalg.inv(info) @ grad), rel=1e-4)


def test_reml_recovers_a_known_heritability():
    rng = np.random.default_rng(11)
    n, p = 1000, 800
    z = rng.integers(0, 2, size=(n, p)).astype(float)
    z -= z.mean(0)
    g = z @ rng.normal(size=p)
    g *= math.sqrt(0.6 / np.var(g))
    y = g + rng.normal(size=n) * math.sqrt(0.4)
    vc = reml(z @ z.T / p, y)
    assert abs(vc.h2 - 0.6) < 2.5 * vc.h2_se and 0.01 < vc.h2_se < 0.1


def test_given_h2_and_bad_inputs():
    k, y, x = _data()
    m = KernelBLUP(h2=0.3).fit(k, y, x)
    assert m.vc.h2 == pytest.approx(0.3, rel=1e-9)
    with pytest.raises(ValueError, match="h2 must be in"):
        KernelBLUP(h2=1.0)
    with pytest.raises(ValueError, match="K must be"):
        KernelBLUP().fit(k[:-1, :-1], y)
    y2 = y.copy()
    y2[3] = np.inf
    with pytest.raises(ValueError, match="finite"):
        KernelBLUP().fit(k, y2)
