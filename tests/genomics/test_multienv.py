"""Multi-environment models against dense, independent computations and a simulation."""

from __future__ import annotations

import math

import numpy as np
import pytest

from cnnkit.genomics.baselines import GBLUP
from cnnkit.genomics.cv import CVConfig, cross_validate
from cnnkit.genomics.dataset import Covariates
from cnnkit.genomics.methods import make_method, parse_methods
from cnnkit.genomics.multienv import MultiEnvBLUP, _RotatedReml
from cnnkit.genomics.preprocess import SnpPreprocessor
from cnnkit.genomics.trainer import SnpTrainConfig


def _two_envs(n=150, p=300, rho=0.8, seed=0, missing=0.0, realised=False):
    """Two environments with genetic correlation ``rho``, h2 ~0.5 in each."""
    rng = np.random.default_rng(seed)
    x = rng.integers(0, 2, size=(n, p)).astype(np.float32)
    z = x - x.mean(0)
    b1 = rng.normal(size=p)
    b2 = rho * b1 + math.sqrt(1 - rho**2) * rng.normal(size=p)
    g = np.column_stack([z @ b1, z @ b2]) / math.sqrt(p * 0.25)
    y = g + rng.normal(size=(n, 2)) + np.array([5.0, -3.0])
    y[rng.random((n, 2)) < missing] = np.nan
    return (x, y, float(np.corrcoef(g.T)[0, 1])) if realised else (x, y)


def _dense_reml_loglik(k, y, sg, se):
    """REML log-likelihood of complete records from V = Sigma_g (x) K + Sigma_e (x) I."""
    n, e = y.shape
    v = np.kron(sg, k) + np.kron(se, np.eye(n))  # records ordered env-major
    x = np.kron(np.eye(e), np.ones((n, 1)))
    vec = y.T.reshape(-1)
    vinv = np.linalg.inv(v)
    xvx = x.T @ vinv @ x
    pm = vinv - vinv @ x @ np.linalg.solve(xvx, x.T @ vinv)
    q = n * e - e
    logdets = np.linalg.slogdet(v)[1] + np.linalg.slogdet(xvx)[1] - np.linalg.slogdet(x.T @ x)[1]
    return -0.5 * (logdets + vec @ pm @ vec + q * math.log(2 * math.pi))


@pytest.mark.parametrize("structure", ["gxe", "unstructured"])
def test_rotated_reml_equals_the_dense_likelihood(structure):
    x, y = _two_envs(n=60, p=80)
    z = SnpPreprocessor().fit(x).transform(x).astype(float)
    k = z @ z.T / 40
    model = _RotatedReml(k, y, structure)
    rng = np.random.default_rng(1)
    for _ in range(3):
        theta = model.start() + 0.3 * rng.normal(size=model.start().shape)
        sg, se = model.unpack(theta)
        q = model.ys.size
        ours = -0.5 * (model.neg2(theta) + q * math.log(2 * math.pi))
        assert ours == pytest.approx(_dense_reml_loglik(k, y, sg, se), abs=1e-6)


def test_one_environment_is_gblup():
    x, y = _two_envs(n=120, p=200)
    pre = SnpPreprocessor().fit(x[:100])
    ztr, zte = pre.transform(x[:100]), pre.transform(x[100:])
    gb = GBLUP(means=pre.means).fit(ztr, y[:100, 0])
    me = MultiEnvBLUP("gblup", "unstructured", means=pre.means).fit(ztr, y[:100, :1])
    np.testing.assert_allclose(me.predict(zte)[:, 0], gb.predict(zte), rtol=1e-3, atol=1e-3)
    sg, se = me.vc.genetic_covariance[0][0], me.vc.residual_covariance[0][0]
    assert sg == pytest.approx(gb.vc.sigma_g2, rel=1e-3)
    assert se == pytest.approx(gb.vc.sigma_e2, rel=1e-3)


def test_blups_with_missing_records_match_the_dense_formula():
    x, y = _two_envs(n=80, p=120, missing=0.2, seed=3)
    pre = SnpPreprocessor().fit(x)
    z = pre.transform(x).astype(float)
    me = MultiEnvBLUP("gblup", "unstructured", means=pre.means).fit(z, y)
    k = z @ z.T / me.k
    sg, se = np.array(me.vc.genetic_covariance), np.array(me.vc.residual_covariance)
    obs = ~np.isnan(y.T.reshape(-1))  # env-major record order
    v = (np.kron(sg, k) + np.kron(se, np.eye(80)))[np.ix_(obs, obs)]
    xf = np.kron(np.eye(2), np.ones((80, 1)))[obs]
    yo = y.T.reshape(-1)[obs]
    vinv = np.linalg.inv(v)
    b = np.linalg.solve(xf.T @ vinv @ xf, xf.T @ vinv @ yo)
    u = np.kron(sg, k)[:, obs] @ vinv @ (yo - xf @ b)  # every (env, line) genetic value
    np.testing.assert_allclose(me.genetic_values(z), u.reshape(2, 80).T, rtol=1e-6, atol=1e-8)
    np.testing.assert_allclose(me.env_means, b, rtol=1e-8)


def test_genetic_correlation_sign_is_recovered():
    for rho in (0.8, -0.7):
        x, y, real = _two_envs(n=400, p=400, rho=rho, seed=5, realised=True)
        z = SnpPreprocessor().fit(x).transform(x)
        vc = MultiEnvBLUP("gblup", "unstructured").fit(z, y).vc
        assert np.sign(vc.genetic_correlation[0][1]) == np.sign(rho)
        assert abs(vc.genetic_correlation[0][1] - real) < 0.25, (real, vc)


def test_cv2_borrows_from_the_other_environment():
    x, y = _two_envs(n=300, p=300, rho=0.9, seed=7)
    cfg = CVConfig(methods=("gblup", "gblup_mt", "gblup_me"), folds=5, repeats=1, scheme="cv2")
    res = cross_validate(x, y, cfg, envs=["a", "b"])
    r = {(m["method"], m["env"]): m["r_mean"] for m in res["methods"]}
    for env in ("a", "b"):
        assert r[("gblup_mt", env)] > r[("gblup", env)] + 0.05, r
        assert r[("gblup_me", env)] > r[("gblup", env)] + 0.05, r
    assert res["scheme"] == "cv2" and res["envs"] == ["a", "b"]
    with pytest.raises(ValueError, match="needs training records in every environment"):
        cross_validate(x, y, CVConfig(methods=("gblup_mt",), scheme="leave-env-out"))
    loeo = cross_validate(x, y, CVConfig(methods=("gblup_me",), scheme="leave-env-out"))
    assert all(m["r_mean"] > 0.3 for m in loeo["methods"])  # the other environment predicts


def test_multi_output_network_starts_as_the_multi_environment_gblup():
    x, y = _two_envs(n=120, p=150, missing=0.1, seed=2)
    pre = SnpPreprocessor().fit(x[:100])
    ztr, zte = pre.transform(x[:100]), pre.transform(x[100:])
    cfg = SnpTrainConfig(epochs=1, lr=1e-12)
    net = make_method("cnn_me", seed=0, means=pre.means, train=cfg).fit(ztr, y[:100])
    mean, sd = np.nanmean(y[:100], axis=0), np.nanstd(y[:100], axis=0)
    me = MultiEnvBLUP("gblup", "unstructured", means=pre.means).fit(ztr, (y[:100] - mean) / sd)
    expected = me.predict(zte) * sd + mean
    assert net.predict(zte).shape == (20, 2)
    np.testing.assert_allclose(net.predict(zte), expected, rtol=1e-3, atol=1e-3)
    np.testing.assert_allclose(net.predict_linear(zte), expected, rtol=1e-3, atol=1e-3)
    assert not net.net.skip.weight.requires_grad


def test_multi_output_network_trains_its_deep_path_on_observed_records_only():
    x, y = _two_envs(n=120, p=150, missing=0.3, seed=4)
    pre = SnpPreprocessor().fit(x)
    z = pre.transform(x)
    cfg = SnpTrainConfig(epochs=3, early_stopping=False)
    net = make_method("mlp_me", seed=0, means=pre.means, train=cfg).fit(z, y)
    assert len(net.history) == 3 and all(np.isfinite(h["loss"]) for h in net.history)
    assert np.isfinite(net.predict(z)).all()
    assert not np.allclose(net.predict(z), net.predict_linear(z))  # the deep path moved


def test_cv_scores_the_multi_output_network_and_its_linear_part_per_environment():
    x, y = _two_envs(n=90, p=60, seed=6)
    nets = {"train": {"epochs": 2}}
    cfg = CVConfig(methods=("cnn_me",), folds=3, repeats=1, scheme="cv2")
    res = cross_validate(x, y, cfg, envs=["a", "b"], **nets)
    got = {(m["method"], m["env"]) for m in res["methods"]}
    assert got == {(m, e) for m in ("cnn_me", "cnn_me_linear") for e in ("a", "b")}
    assert {(p["method"], p["against"]) for p in res["paired"]} >= {("cnn_me", "cnn_me_linear")}


def test_multi_environment_methods_refuse_fixed_effects():
    x, y = _two_envs(n=60, p=40)
    fixed = Covariates({"trial": np.array(["a", "b"] * 30)})
    with pytest.raises(ValueError, match="gblup_me takes no fixed effects"):
        cross_validate(x, y, CVConfig(methods=("gblup_me",), folds=3), fixed=fixed)


def test_multi_environment_method_names():
    assert parse_methods("gblup-me,GBLUP_MT,cnn_me") == ["gblup_me", "gblup_mt", "cnn_me"]
    with pytest.raises(ValueError, match="y must be"):
        MultiEnvBLUP().fit(np.zeros((10, 5)), np.zeros(10))
    with pytest.raises(ValueError, match="structure must be"):
        MultiEnvBLUP("gblup", "diagonal")
