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
    # the network's linear part alone is scored on the same fits
    assert [m["method"] for m in a["methods"]] == ["cnn", "cnn_linear", "gblup", "ridge"]
    for m in a["methods"]:
        assert {"method", "r_mean", "r_se", "mse_mean", "mse_se", "slope_mean"} <= set(m)
    pairs = [(p["method"], p["against"]) for p in a["paired"]]
    assert pairs == [("cnn", "gblup"), ("cnn", "cnn_linear"), ("cnn_linear", "gblup"),
                     ("ridge", "gblup")]  # fmt: skip
    assert [f["r"] for f in a["fold_results"]] == [f["r"] for f in b["fold_results"]]
    c = cross_validate(x, y, CVConfig(methods=("gblup",), folds=3, repeats=2, seed=6))
    assert c["methods"][0]["r_mean"] != a["methods"][2]["r_mean"]


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


def _grouped(n=90, p=50, seed=7):
    """A strong group (tester) effect plus an additive genetic signal."""
    rng = np.random.default_rng(seed)
    x = rng.integers(0, 3, size=(n, p)).astype(np.float32)
    group = np.array([f"T{i % 3}" for i in range(n)], dtype=object)
    y = x[:, :5].sum(1) + 4.0 * (np.arange(n) % 3) + rng.normal(size=n)
    return x, y, group


def test_fixed_effects_enter_every_method():
    from cnnkit.genomics.dataset import Covariates

    x, y, group = _grouped()
    cfg = CVConfig(methods=("gblup", "rkhs", "ridge"), folds=3, repeats=1, seed=0)
    plain = cross_validate(x, y, cfg)
    fixed = cross_validate(x, y, cfg, fixed=Covariates({"tester": group}))
    for a, b in zip(plain["methods"], fixed["methods"], strict=True):
        assert b["r_mean"] > a["r_mean"] + 0.2, (a, b)  # the group effect is predicted


def test_kblup_on_the_genomic_matrix_equals_gblup():
    """A user K that is VanRaden's G of all lines gives GBLUP's predictions (same REML)."""
    from cnnkit.genomics.kernels import vanraden_g, vanraden_scale
    from cnnkit.genomics.preprocess import SnpPreprocessor

    rng = np.random.default_rng(2)
    x = rng.integers(0, 3, size=(50, 40)).astype(np.float32)
    y = x[:, :4].sum(1) + rng.normal(size=50)
    pre = SnpPreprocessor().fit(x)
    k = vanraden_g(pre.transform(x), vanraden_scale(pre.means))
    cfg = CVConfig(methods=("kblup", "gblup"), folds=5, repeats=1, seed=3)
    res = cross_validate(x, y, cfg, kinship=k, keep_predictions=True)
    by = {(p["fold"], p["method"]): np.array(p["pred"]) for p in res["predictions"]}
    # G centred on all lines vs on the training lines differs by a rank-one term that the
    # intercept absorbs; predictions agree closely but not exactly
    for fold in range(5):
        np.testing.assert_allclose(by[(fold, "kblup")], by[(fold, "gblup")], atol=0.15)
    assert res["paired"][0]["against"] == "gblup" and abs(res["paired"][0]["r_diff_mean"]) < 0.02


def test_user_folds_and_leave_group_out():
    x, y, group = _grouped(n=60)
    cfg = CVConfig(methods=("gblup",), folds=5, repeats=3)
    res = cross_validate(x, y, cfg, groups=group, keep_predictions=True)
    assert res["scheme"] == "leave-group-out" and (res["folds"], res["repeats"]) == (3, 1)
    for p in res["predictions"]:  # each fold holds out exactly one group
        assert set(group[p["rows"]]) == {f"T{p['fold']}"}
    fold_of = np.array([str(i % 4) for i in range(60)], dtype=object)
    res = cross_validate(x, y, cfg, fold_of=fold_of, keep_predictions=True)
    assert res["scheme"] == "fold-file" and res["folds"] == 4
    assert {tuple(p["rows"]) for p in res["predictions"]} == {
        tuple(range(k, 60, 4)) for k in range(4)
    }


def test_an_interrupted_cv_resumes_what_it_finished(tmp_path, monkeypatch):
    x, y, _ = _grouped(n=60)
    cfg = CVConfig(methods=("gblup", "ridge"), folds=3, repeats=2, seed=1)
    whole = cross_validate(x, y, cfg)
    progress = tmp_path / "progress.jsonl"
    real, calls = cv_mod._run_task, []

    def dies_after_five(*args, **kwargs):
        if len(calls) == 5:
            raise KeyboardInterrupt
        calls.append(args[2])
        return real(*args, **kwargs)

    monkeypatch.setattr(cv_mod, "_run_task", dies_after_five)
    with pytest.raises(KeyboardInterrupt):
        cross_validate(x, y, cfg, progress_file=progress)
    assert len(progress.read_text().splitlines()) == 1 + 5  # fingerprint + finished tasks
    with progress.open("a") as fh:
        fh.write('{"repeat": 1, "fold"')  # a torn last line (killed mid-write)
    monkeypatch.setattr(cv_mod, "_run_task", real)
    lines = []
    resumed = cross_validate(x, y, cfg, progress_file=progress, log=lines.append)
    assert lines[0] == "resuming: 5 of 12 (fold, method) results kept"
    assert lines[1].startswith("[6/12] ") and "ETA" in lines[1] and len(lines) == 8
    assert [f["r"] for f in resumed["fold_results"]] == [f["r"] for f in whole["fold_results"]]
    other = CVConfig(methods=("gblup", "ridge"), folds=3, repeats=2, seed=2)
    with pytest.raises(FileExistsError, match="other data or settings"):
        cross_validate(x, y, other, progress_file=progress)


def test_progress_is_logged_with_a_counter_and_eta():
    x, y, _ = _grouped(n=30)
    lines = []
    cross_validate(x, y, CVConfig(methods=("gblup",), folds=2, repeats=1), log=lines.append)
    assert [ln.split("]")[0] for ln in lines] == ["[1/2", "[2/2"]
    assert all("elapsed" in ln and "ETA" in ln for ln in lines)
