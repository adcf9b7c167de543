"""The SNP training routine: masked multi-output loss and training without early stopping."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from cnnkit.genomics.trainer import SnpTrainConfig, _MaskedMSE, fit_network


def _data(n=64, p=10, seed=0):
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, p)).astype(np.float32)
    w = rng.normal(size=(p, 2))
    return x, x @ w


def test_masked_loss_is_the_mean_over_observed_entries():
    out = torch.tensor([[1.0, 2.0], [3.0, 4.0]])
    y = torch.tensor([[0.0, float("nan")], [1.0, 1.0]])
    expected = (1.0 + 4.0 + 9.0) / 3
    assert float(_MaskedMSE()(out, y)) == pytest.approx(expected)


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
