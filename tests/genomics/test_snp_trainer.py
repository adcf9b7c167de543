"""The SNP training routine: masked multi-output loss and training without early stopping."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from cnnkit.genomics.trainer import SnpTrainConfig, fit_network


def _data(n=64, p=10, seed=0):
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, p)).astype(np.float32)
    w = rng.normal(size=(p, 2))
    return x, x @ w


def test_targets_with_missing_records_train_every_output():
    x, y = _data()
    y[::2, 1] = np.nan  # half the lines have no record in environment 2
    torch.manual_seed(0)
    model = torch.nn.Linear(10, 2)
    history = fit_network(model, x, y, SnpTrainConfig(epochs=200, lr=3e-2, batch_size=16), seed=0)
    assert all(np.isfinite(h["loss"]) for h in history)
    pred = model(torch.as_tensor(x)).detach().numpy()
    seen = ~np.isnan(y)
    for e in range(2):
        assert np.corrcoef(pred[seen[:, e], e], y[seen[:, e], e])[0, 1] > 0.95


def test_without_early_stopping_every_epoch_runs_on_every_row():
    x, y = _data()
    model = torch.nn.Linear(10, 1)
    cfg = SnpTrainConfig(epochs=7, patience=1, lr=1e3, early_stopping=False)  # diverges
    history = fit_network(model, x, y[:, 0], cfg, seed=0)
    assert [h["epoch"] for h in history] == list(range(1, 8))
    assert all(h["val_loss"] is None for h in history)
    with pytest.raises(ValueError, match="early_stopping must be true or false"):
        SnpTrainConfig(early_stopping="no")  # type: ignore[arg-type]


def test_networks_train_in_the_one_loop_at_a_constant_rate_quietly(monkeypatch, capsys):
    import cnnkit.genomics.trainer as trainer

    runs, real = [], trainer.fit
    monkeypatch.setattr(trainer, "fit", lambda *a, **k: runs.append(real(*a, **k)) or runs[-1])
    x, y = _data()
    y[::3, 0] = np.nan
    cfg = SnpTrainConfig(epochs=6, lr=2e-3, patience=50)
    history = fit_network(torch.nn.Linear(10, 2), x, y, cfg, seed=0)
    (res,) = runs
    assert res.precision.value == "fp32"
    assert [h["lr"] for h in res.history] == [2e-3] * 6
    assert [h["epoch"] for h in history] == list(range(1, 7))
    assert history[-1]["val_loss"] == res.history[-1]["val_loss"]
    assert capsys.readouterr().err == ""  # dozens of networks per cross-validation: no lines


def test_a_network_that_cannot_beat_its_start_is_kept_as_it_started():
    x, y = _data()
    model = torch.nn.Linear(10, 1)
    start = {k: v.clone() for k, v in model.state_dict().items()}
    cfg = SnpTrainConfig(epochs=5, lr=1e3, patience=2)  # every step overshoots
    history = fit_network(model, x, y[:, 0], cfg, seed=0)
    assert len(history) == 2 and history[0]["val_loss"] > 0
    for k, v in model.state_dict().items():
        assert torch.equal(v, start[k]), k
