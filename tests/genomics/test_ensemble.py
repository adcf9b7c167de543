"""Ensembles of SNP networks: the mean of their members, seeded, N = 1 unchanged, saved whole."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from safetensors.torch import load_file

from cnnkit.cli.main import main
from cnnkit.genomics.baselines import GBLUP
from cnnkit.genomics.methods import (
    NeuralRegressor,
    SnpEnsemble,
    make_method,
    members_of,
    train_config,
)
from cnnkit.genomics.preprocess import SnpPreprocessor
from cnnkit.genomics.run import load_run, predict_run, train_run
from cnnkit.genomics.trainer import SnpTrainConfig, fit_network

FAST = dict(epochs=4, batch_size=32, patience=3, lr=3e-3)
# Without the GBLUP start, so that at this tiny size the members' predictions differ.
NO_SKIP = {"linear_skip": False}


@pytest.fixture
def data():
    rng = np.random.default_rng(4)
    x = rng.integers(0, 3, size=(90, 40)).astype(np.float32)
    y = x[:, :5].sum(1) + 2.0 * (x[:, 20] - 1) * (x[:, 22] - 1) + rng.normal(size=90)
    pre = SnpPreprocessor().fit(x[:70])
    return pre, pre.transform(x[:70]), y[:70], pre.transform(x[70:])


def _fit(data, ensemble, seed=3, task="regression", model_kwargs=None):
    pre, xtr, ytr, _ = data
    train = SnpTrainConfig(**FAST, ensemble=ensemble, task=task)
    est = NeuralRegressor("snp_cnn1d", model_kwargs, train, seed=seed, means=pre.means)
    return est.fit(xtr, (ytr > np.median(ytr)).astype(float) if task == "binary" else ytr)


def _member_prediction(est, member, x, binary=False):
    with torch.no_grad():
        out = member.eval()(torch.as_tensor(x))[:, 0].double().numpy()  # (M, 1) -> (M,)
    return 1 / (1 + np.exp(-out)) if binary else out * est.y_std + est.y_mean


def test_prediction_is_the_mean_of_the_members(data):
    est, xte = _fit(data, 3, model_kwargs=NO_SKIP), data[3]
    assert isinstance(est.net, SnpEnsemble) and len(est.histories) == 3
    each = [_member_prediction(est, m, xte) for m in members_of(est.net)]
    assert not np.allclose(each[0], each[1])  # the members differ
    np.testing.assert_allclose(est.predict(xte), np.mean(each, axis=0), rtol=1e-5, atol=1e-6)


def test_binary_ensemble_averages_probabilities(data):
    est, xte = _fit(data, 2, task="binary"), data[3]
    each = [_member_prediction(est, m, xte, binary=True) for m in members_of(est.net)]
    np.testing.assert_allclose(est.predict(xte), np.mean(each, axis=0), rtol=1e-5, atol=1e-6)


def test_ensemble_is_deterministic_from_the_seed(data):
    a, b = _fit(data, 2, model_kwargs=NO_SKIP), _fit(data, 2, model_kwargs=NO_SKIP)
    c = _fit(data, 2, seed=4, model_kwargs=NO_SKIP)
    np.testing.assert_array_equal(a.predict(data[3]), b.predict(data[3]))
    assert not np.allclose(a.predict(data[3]), c.predict(data[3]))


def _single_network_as_before(data, seed):
    """The pre-ensemble recipe: build seeded, start at GBLUP, fit_network with ``seed``."""
    pre, xtr, ytr, xte = data
    ys = (ytr - ytr.mean()) / ytr.std()
    est = NeuralRegressor("snp_cnn1d", train=SnpTrainConfig(**FAST), seed=seed, means=pre.means)
    net = est._build_one(xtr.shape[1], seed)
    gb = GBLUP(means=pre.means).fit(xtr, ys)
    with torch.no_grad():
        net.skip.weight.copy_(torch.as_tensor(gb.beta, dtype=torch.float32)[None])
        net.skip.bias.fill_(gb.intercept)
        net.fc.weight.zero_()
        net.fc.bias.zero_()
    net.skip.requires_grad_(False)
    fit_network(net, xtr, gb.predict(xtr) + gb.loo_residuals, est.train, seed=seed)
    with torch.no_grad():
        out = net(torch.as_tensor(xte))[:, 0].numpy().astype(np.float64)
    return net, out * ytr.std() + ytr.mean()


def test_one_member_is_the_single_network_of_before(data):
    net, expected = _single_network_as_before(data, seed=3)
    one = _fit(data, 1)
    assert not isinstance(one.net, SnpEnsemble)
    assert list(one.net.state_dict()) == list(net.state_dict())  # run folders keep their keys
    np.testing.assert_array_equal(one.predict(data[3]), expected)
    # member 0 of an ensemble is that network too: same seed, same inner split
    first = members_of(_fit(data, 3).net)[0]
    for k, v in net.state_dict().items():
        torch.testing.assert_close(first.state_dict()[k], v, rtol=0, atol=0)


def test_members_share_one_inner_split_and_differ_in_seed(data, monkeypatch):
    import cnnkit.genomics.trainer as trainer

    calls, real = [], trainer.inner_split
    monkeypatch.setattr(trainer, "inner_split", lambda n, f, s: calls.append(s) or real(n, f, s))
    seeds = []
    monkeypatch.setattr(torch, "manual_seed", lambda s: seeds.append(s))
    _fit(data, 3, seed=7)
    assert calls == [7, 7, 7]
    assert {1007, 2007} <= set(seeds) and 7 in seeds


def test_default_cnn_is_a_regularised_ensemble_of_three():
    cnn, mlp = make_method("cnn"), make_method("mlp")
    assert (cnn.train.ensemble, cnn.train.weight_decay) == (3, 1e-2)
    assert cnn.model_kwargs["dropout"] == 0.5
    assert (mlp.train.ensemble, mlp.train.weight_decay) == (1, 1e-3)
    tweaked = train_config("snp_cnn1d", {"ensemble": 1, "epochs": 5})
    assert (tweaked.ensemble, tweaked.epochs, tweaked.weight_decay) == (1, 5, 1e-2)
    given = SnpTrainConfig(epochs=5)  # a complete config is taken as it is
    assert train_config("snp_cnn1d", given) is given
    with pytest.raises(ValueError, match=r"SnpTrainConfig fields.*Received: \['ensembles'\]"):
        train_config("snp_cnn1d", {"ensembles": 2})


def test_ensemble_must_be_a_positive_int():
    with pytest.raises(ValueError, match="ensemble must be a positive int. Received: ensemble=0"):
        SnpTrainConfig(ensemble=0)


def _write_data(tmp_path, n=60, p=30):
    rng = np.random.default_rng(0)
    x = rng.integers(0, 3, size=(n, p))
    y = x[:, :3].sum(1) + rng.normal(size=n)
    ids = [f"s{i}" for i in range(n)]
    rows = [f"{i}," + ",".join(map(str, r)) for i, r in zip(ids, x, strict=True)]
    header = "id," + ",".join(f"rs{j}" for j in range(p))
    (tmp_path / "g.csv").write_text(header + "\n" + "\n".join(rows) + "\n")
    lines = "".join(f"{i},{v}\n" for i, v in zip(ids, y, strict=True))
    (tmp_path / "p.csv").write_text("id,y\n" + lines)
    return tmp_path / "g.csv", tmp_path / "p.csv", x.astype(np.float32), y


def test_run_folder_saves_and_predicts_with_every_member(tmp_path):
    geno, pheno, x, y = _write_data(tmp_path)
    train = SnpTrainConfig(**FAST, ensemble=3)
    saved = train_run(geno, pheno, tmp_path / "run", train=train, seed=2)
    files = {f.name for f in (tmp_path / "run").iterdir()}
    assert files == {".cnnkit-run", "config.json", "model.safetensors", "preprocessor.safetensors",
                     "history.csv"}  # fmt: skip
    keys = load_file(str(tmp_path / "run" / "model.safetensors"))
    assert {k.split(".")[1] for k in keys} == {"0", "1", "2"}
    assert [m["seed"] for m in saved["members"]] == [2, 1002, 2002]
    pre = SnpPreprocessor().fit(x)
    est = NeuralRegressor("snp_cnn1d", train=train, seed=2, means=pre.means)
    expected = est.fit(pre.transform(x), y).predict(pre.transform(x))
    run = load_run(tmp_path / "run")
    assert isinstance(run.net, SnpEnsemble) and len(run.net.members) == 3
    got = [r["prediction"] for r in predict_run(run, geno)]
    np.testing.assert_allclose(got, expected, rtol=1e-5, atol=1e-5)


def test_cli_ensemble_for_train_and_cv(tmp_path, capsys):
    geno, pheno, _, _ = _write_data(tmp_path)
    fast = ["--epochs", "3", "--batch-size", "32", "--patience", "2", "--json"]
    run = tmp_path / "run"
    args = ["genomics", "train", str(geno), str(pheno), "--out", str(run), "--ensemble", "2"]
    assert main([*args, *fast]) == 0
    assert json.loads(capsys.readouterr().out)["ensemble"] == 2
    default = ["genomics", "train", str(geno), str(pheno), "--out", str(tmp_path / "r3")]
    assert main([*default, *fast]) == 0
    assert json.loads(capsys.readouterr().out)["ensemble"] == 3  # the cnn default
    assert len(json.loads((run / "config.json").read_text())["members"]) == 2
    assert main(["genomics", "predict", str(run), str(geno), "--json"]) == 0
    assert len(json.loads(capsys.readouterr().out)) == 60
    cv = ["genomics", "cv", str(geno), str(pheno), "--methods", "cnn,gblup", "--folds", "2"]
    assert main([*cv, "--repeats", "1", "--ensemble", "2", "--json"]) == 0
    assert [m["method"] for m in json.loads(capsys.readouterr().out)["methods"]] == [
        "cnn",
        "cnn_linear",
        "gblup",
    ]
    assert main([*cv, "--ensemble", "0"]) == 2
    assert "ensemble must be a positive int" in capsys.readouterr().err
