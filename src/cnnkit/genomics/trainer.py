"""A small, deterministic training routine for SNP networks (tiny tensors, plain Adam).

Mini-batch Adam with L2 weight decay for a fixed number of epochs, or with early stopping on
an inner validation split taken from the training rows (the best epoch's weights restored).
Targets of shape ``(N, E)`` (several environments) may hold NaN: the loss is the mean over
the observed entries only.
"""

from __future__ import annotations

import copy
import math
from dataclasses import asdict, dataclass

import numpy as np
import torch
from torch import nn


@dataclass(frozen=True, kw_only=True)
class SnpTrainConfig:
    """Settings of :func:`fit_network`.

    These are the generic defaults; the genomics methods start from their own
    (``cnnkit.genomics.methods.TRAIN_DEFAULTS``: ``cnn`` uses weight decay 1e-2 and an
    ensemble of 3) unless given a complete config.

    Attributes:
        epochs: most passes over the inner training rows.
        batch_size: rows per Adam step.
        lr: Adam learning rate.
        weight_decay: L2 penalty on the trainable weights (Adam ``weight_decay``).
        patience: epochs without a better inner-validation loss before stopping.
        val_fraction: share of the training rows held out for early stopping.
        task: ``"regression"`` (MSE) or ``"binary"`` (logistic loss on one logit).
        ensemble: networks trained (seeds derived from the seed, one inner split) and
            averaged; ``ensemble`` times the fit time.
        early_stopping: hold out ``val_fraction`` of the rows and keep the best epoch
            (``patience``); False: train on every row for exactly ``epochs`` epochs.
    """

    epochs: int = 150
    batch_size: int = 64
    lr: float = 1e-3
    weight_decay: float = 1e-3
    patience: int = 15
    val_fraction: float = 0.15
    task: str = "regression"
    ensemble: int = 1
    early_stopping: bool = True

    def __post_init__(self) -> None:
        for name in ("epochs", "batch_size", "patience", "ensemble"):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, int) or v < 1:
                raise ValueError(f"{name} must be a positive int. Received: {name}={v!r}")
        if not self.lr > 0 or self.weight_decay < 0:
            raise ValueError(
                f"lr must be > 0 and weight_decay >= 0. Received: lr={self.lr}, "
                f"weight_decay={self.weight_decay}"
            )
        if not 0.0 < self.val_fraction < 0.5:
            raise ValueError(f"val_fraction must be in (0, 0.5). Received: {self.val_fraction}")
        if not isinstance(self.early_stopping, bool):
            raise ValueError(
                f"early_stopping must be true or false. Received: {self.early_stopping!r}"
            )
        if self.task not in ("regression", "binary"):
            raise ValueError(f'task must be "regression" or "binary". Received: {self.task!r}')

    def to_dict(self) -> dict:
        return asdict(self)


def inner_split(n: int, fraction: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Random ``(train_idx, val_idx)`` of ``range(n)`` with ``ceil(fraction * n)`` val rows."""
    order = np.random.default_rng(seed).permutation(n)
    n_val = max(1, math.ceil(fraction * n))
    return np.sort(order[n_val:]), np.sort(order[:n_val])


class _MaskedMSE(nn.Module):
    """Mean squared error over the finite entries of the target (NaN: no record)."""

    def forward(self, out: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        seen = ~torch.isnan(y)
        diff = torch.where(seen, out - torch.nan_to_num(y), torch.zeros_like(out))
        return (diff * diff).sum() / seen.sum().clamp(min=1)


def _loss_fn(task: str, multi: bool) -> nn.Module:
    if multi:
        return _MaskedMSE()
    return nn.BCEWithLogitsLoss() if task == "binary" else nn.MSELoss()


def _outputs(model, x: torch.Tensor, multi: bool) -> torch.Tensor:
    out = model(x)
    return out if multi else out.squeeze(1)  # (B, E) for several outputs, else (B, 1) -> (B,)


def _epoch(model, x, y, opt, loss_fn, batch_size: int, gen: torch.Generator, multi: bool) -> float:
    model.train()
    order = torch.randperm(len(x), generator=gen)
    total = 0.0
    for start in range(0, len(x), batch_size):
        idx = order[start : start + batch_size]
        opt.zero_grad(set_to_none=True)
        loss = loss_fn(_outputs(model, x[idx], multi), y[idx])
        loss.backward()
        opt.step()
        total += float(loss.detach()) * len(idx)
    return total / len(x)


@torch.no_grad()
def _evaluate(model, x, y, loss_fn, multi: bool) -> float:
    model.eval()
    return float(loss_fn(_outputs(model, x, multi), y))


def fit_network(
    model: nn.Module,
    x: np.ndarray,
    y: np.ndarray,
    config: SnpTrainConfig,
    *,
    seed: int,
    split_seed: int | None = None,
    device: str | torch.device = "cpu",
) -> list[dict]:
    """Train ``model`` in place; keep the weights of the best inner-validation epoch.

    Args:
        model: maps ``(B, L)`` to ``(B, 1)`` (``(B, E)`` for targets ``(N, E)``); frozen
            parameters (``requires_grad=False``) stay as they are.
        x: inputs, shape ``(N, L)``; only training rows of the outer fold.
        y: targets, shape ``(N,)`` (standardised for regression, 0/1 for binary), or
            ``(N, E)`` with NaN where there is no record (masked mean squared error).
        config: the settings.
        seed: seeds the shuffling and dropout, and the inner split unless ``split_seed``.
        split_seed: seeds the inner split (default ``seed``); the members of an ensemble
            share it.
        device: where to train.

    Returns:
        One dict per epoch: ``epoch``, ``loss``, ``val_loss`` (None without early stopping).
    """
    torch.manual_seed(seed)
    gen = torch.Generator().manual_seed(seed)
    multi = np.ndim(y) == 2
    xt = torch.as_tensor(x, dtype=torch.float32, device=device)
    yt = torch.as_tensor(y, dtype=torch.float32, device=device)
    model.to(device)
    params = [p for p in model.parameters() if p.requires_grad]
    opt = torch.optim.Adam(params, lr=config.lr, weight_decay=config.weight_decay)
    loss_fn = _loss_fn(config.task, multi)
    if not config.early_stopping:
        history = []
        for epoch in range(1, config.epochs + 1):
            loss = _epoch(model, xt, yt, opt, loss_fn, config.batch_size, gen, multi)
            history.append({"epoch": epoch, "loss": loss, "val_loss": None})
        model.eval()
        return history
    split = seed if split_seed is None else split_seed
    tr, va = inner_split(len(x), config.val_fraction, split)
    # Epoch 0 counts: a network that never beats its starting point is kept as it started.
    best = _evaluate(model, xt[va], yt[va], loss_fn, multi)
    best_state, since, history = copy.deepcopy(model.state_dict()), 0, []
    for epoch in range(1, config.epochs + 1):
        loss = _epoch(model, xt[tr], yt[tr], opt, loss_fn, config.batch_size, gen, multi)
        val = _evaluate(model, xt[va], yt[va], loss_fn, multi)
        history.append({"epoch": epoch, "loss": loss, "val_loss": val})
        if val < best - 1e-6:
            best, best_state, since = val, copy.deepcopy(model.state_dict()), 0
        else:
            since += 1
            if since >= config.patience:
                break
    model.load_state_dict(best_state)
    model.eval()
    return history
