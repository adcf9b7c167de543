"""The training settings of the SNP networks, and :func:`fit_network`, which trains one with
the loop every cnnkit model trains with (:func:`cnnkit.train.fit`).

Mini-batch Adam with L2 weight decay at a constant learning rate, in fp32, for a fixed number
of epochs, or with early stopping on an inner validation split taken from the training rows
(the best epoch's weights restored; the starting weights count as epoch 0). Targets of shape
``(N, E)`` (several environments) may hold NaN: the loss is the mean over the observed entries
only (the loop's ``masked_regression``).
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import numpy as np
import torch
from torch import nn

from cnnkit.train.callbacks import EarlyStopping
from cnnkit.train.loop import LoopSettings, Tensors, fit


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


def loop_settings(config: SnpTrainConfig, seed: int, multi: bool) -> LoopSettings:
    """The training loop's settings for ``config``: Adam with L2 weight decay, a constant
    learning rate, fp32; the masked loss for targets ``(N, E)``."""
    task = "masked_regression" if multi else config.task
    return LoopSettings(
        epochs=config.epochs,
        batch_size=config.batch_size,
        lr=config.lr,
        optimizer="adam",
        weight_decay=config.weight_decay,
        schedule="none",
        precision="fp32",
        seed=seed,
        task=task,
    )


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
    multi = np.ndim(y) == 2
    data = Tensors(torch.as_tensor(x, dtype=torch.float32), torch.as_tensor(y, dtype=torch.float32))
    settings = loop_settings(config, seed, multi)
    if not config.early_stopping:
        history = fit(model, data, None, settings, device=device).history
    else:
        split = seed if split_seed is None else split_seed
        tr, va = inner_split(len(x), config.val_fraction, split)
        # Epoch 0 counts: a network that never beats its starting point is kept as it started.
        stopping = EarlyStopping(
            config.patience, min_delta=1e-6, baseline_from_start=True, verbose=0
        )
        history = fit(model, _rows(data, tr), _rows(data, va), settings, callbacks=[stopping],
                      device=device).history  # fmt: skip
    model.eval()
    with_val = config.early_stopping
    return [
        {"epoch": h["epoch"], "loss": h["loss"], "val_loss": h["val_loss"] if with_val else None}
        for h in history
    ]


def _rows(data: Tensors, idx: np.ndarray) -> Tensors:
    rows = torch.as_tensor(idx)
    return Tensors(data.images[rows], data.labels[rows])
