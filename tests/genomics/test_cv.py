"""Cross-validation: identical folds, determinism from the seed, no leakage of test rows."""

from __future__ import annotations

import math

import numpy as np
import pytest

import cnnkit.genomics.cv as cv_mod
from cnnkit.genomics.cv import CVConfig, cross_validate, daetwyler, fold_indices, scores
from cnnkit.genomics.trainer import SnpTrainConfig

FAST = SnpTrainConfig(epochs=3, batch_size=32, patience=2)


@pytest.fixture
def data():
    rng = np.random.default_rng(3)
    x = rng.integers(0, 3, size=(60, 40)).astype(np.float32)
    x[rng.random(x.shape) < 0.02] = np.nan
    y = np.nan_to_num(x[:, :6]).sum(1) + rng.normal(size=60)
    return x, y


def test_results_have_the_design_fields_and_are_deterministic(data):
    x, y = data
    cfg = CVConfig(methods=("cnn", "gblup", "ridge"), folds=3, repeats=2, seed=5)
    a = cross_validate(x, y, cfg, train=FAST)
    b = cross_validate(x, y, cfg, train=FAST)
    assert {"n", "p", "folds", "repeats", "methods", "paired", "ceiling"} <= set(a)
    assert (a["n"], a["p"], a["folds"], a["repeats"]) == (60, 40, 3, 2)
    assert [m["method"] for m in a["methods"]] == ["cnn", "gblup", "ridge"]
    for m in a["methods"]:
        assert {"method", "r_mean", "r_se", "mse_mean", "mse_se", "slope_mean"} <= set(m)
    assert [p["method"] for p in a["paired"]] == ["cnn", "ridge"]
    assert [f["r"] for f in a["fold_results"]] == [f["r"] for f in b["fold_results"]]
    c = cross_validate(x, y, CVConfig(methods=("gblup",), folds=3, repeats=2, seed=6))
    assert c["methods"][0]["r_mean"] != a["methods"][1]["r_mean"]


def test_folds_partition_the_samples_in_each_repeat():
    folds = fold_indices(23, 5, 2, seed=0)
    assert len(folds) == 10
    for r in (0, 1):
        tests = np.concatenate([te for rr, _, _, te in folds if rr == r])
        assert sorted(tests.tolist()) == list(range(23))
    assert not np.array_equal(folds[0][3], folds[5][3])  # repeats reshuffle
    with pytest.raises(ValueError, match="folds must be <="):
        fold_indices(3, 5, 1, 0)


def test_test_rows_never_reach_fitting(data, monkeypatch):
    x, y = data
    y = y + np.arange(60) * 1e-3  # every phenotype value unique
    seen = []
    real = cv_mod.make_method

    def spy(name, **kw):
        est = real(name, **kw)
        fit = est.fit

        def recording_fit(xf, yf):
            seen.append((name, len(xf), set(np.round(yf, 9))))
            return fit(xf, yf)

        est.fit = recording_fit
        return est

    monkeypatch.setattr(cv_mod, "make_method", spy)
    cfg = CVConfig(methods=("cnn", "gblup", "lasso"), folds=3, repeats=1, seed=0)
    cross_validate(x, y, cfg, train=FAST)
    folds = fold_indices(60, 3, 1, 0)
    assert len(seen) == 9
    expected = [f for f in folds for _ in range(3)]
    for (_, n_fit, ys), (_, _, tr, te) in zip(seen, expected, strict=True):
        assert n_fit == len(tr)
        assert not ys & set(np.round(y[te], 9))


def test_perturbing_a_folds_test_phenotypes_leaves_its_predictions_unchanged(data):
    x, y = data
    cfg = CVConfig(methods=("cnn", "gblup", "elasticnet"), folds=3, repeats=1, seed=0)
    te = fold_indices(60, 3, 1, 0)[1][3]
    y2 = y.copy()
    y2[te] += 100.0
    a = cross_validate(x, y, cfg, train=FAST, keep_predictions=True)["predictions"]
    b = cross_validate(x, y2, cfg, train=FAST, keep_predictions=True)["predictions"]
    for pa, pb in zip(a, b, strict=True):
        if pa["fold"] == 1:
            np.testing.assert_allclose(pa["pred"], pb["pred"], rtol=1e-6, atol=1e-9)
        else:
            assert not np.allclose(pa["pred"], pb["pred"])


def test_scores_and_daetwyler():
    s = scores(np.array([1.0, 2.0, 3.0]), np.array([2.0, 4.0, 6.0]))
    assert s["r"] == pytest.approx(1.0) and s["slope"] == pytest.approx(0.5)
    assert s["mse"] == pytest.approx((1 + 4 + 9) / 3)
    me = 2 * 100 * 1.0 / math.log(400)
    assert daetwyler(1000, 0.5, 100, 1.0) == pytest.approx(math.sqrt(500 / (500 + me)))


def test_config_validation():
    with pytest.raises(ValueError, match="folds must be an int >= 2"):
        CVConfig(folds=1)
