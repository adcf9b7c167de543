"""How long to train when the user did not say: a budget of optimiser steps sized for the data.

A fixed number of epochs under-trains a small folder (600 images at batch 64 are 10 steps an
epoch: 12 epochs are 120 steps, too few for a network started from scratch) and over-trains a
large one. The default budget grows with the square root of the steps in one epoch:

    epochs = clamp(round(BUDGET / sqrt(steps_per_epoch)), MIN_EPOCHS, MAX_EPOCHS)

so 200 images (4 steps an epoch) get 60 epochs (240 steps), 600 images 38 epochs (380 steps),
4,000 images 15 epochs (about 950 steps), 60,000 images 5 epochs (about 4,700 steps).
Early stopping on the validation loss (patience :func:`auto_patience`) ends a run that no
longer improves, and the best weights are restored; ``--epochs N`` trains exactly ``N``.
It watches only the second half of the planned epochs (:data:`WATCH_SHARE`, Keras'
``start_from_epoch``): under the one-cycle schedule the first half climbs to the peak rate
and leaves it, and a small set's validation loss often rises there while the network is
still learning (a two-class 64x64 folder stopped at epoch 14 of 38, 33 points below a tuned
run, bench/results/defaults.md).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

BUDGET = 120
MIN_EPOCHS = 5
MAX_EPOCHS = 60
MIN_PATIENCE = 5
WATCH_SHARE = 0.5
"""The share of a phase's epochs the default early stopping does not watch."""


@dataclass(frozen=True)
class Budget:
    """A run's training length and early-stopping patience, and why.

    Attributes:
        epochs: epochs to train (at most; early stopping may end sooner).
        patience: early-stopping patience in epochs (0 = off).
        steps_per_epoch: optimiser steps in one epoch.
        unwatched_share: the share of each phase's epochs early stopping does not watch.
        why: one line for the log and ``config.json``.
    """

    epochs: int
    patience: int
    steps_per_epoch: int
    why: str
    unwatched_share: float = 0.0

    def to_dict(self) -> dict[str, object]:
        return {
            "epochs": self.epochs,
            "patience": self.patience,
            "steps_per_epoch": self.steps_per_epoch,
            "unwatched_share": self.unwatched_share,
            "why": self.why,
        }


def steps_per_epoch(n_train: int, batch_size: int, max_steps: int | None = None) -> int:
    """Optimiser steps in one epoch of ``n_train`` images (the last batch counts)."""
    steps = max(1, math.ceil(n_train / batch_size))
    return min(steps, max_steps) if max_steps else steps


def auto_epochs(steps: int) -> int:
    """The default epochs for ``steps`` optimiser steps an epoch (see the module's rule)."""
    return int(min(MAX_EPOCHS, max(MIN_EPOCHS, round(BUDGET / math.sqrt(max(steps, 1))))))


def auto_patience(epochs: int) -> int:
    """Early-stopping patience for a run of ``epochs``: a fifth of it, at least 5 epochs."""
    return max(MIN_PATIENCE, math.ceil(epochs / 5))


def unwatched_share(epochs: int | None, early_stopping: int | None) -> float:
    """The share of each phase early stopping leaves unwatched: :data:`WATCH_SHARE` when the
    user set neither the epochs nor the patience, else none (Keras' default)."""
    return WATCH_SHARE if epochs is None and early_stopping is None else 0.0


def plan_budget(
    n_train: int,
    batch_size: int,
    epochs: int | None,
    early_stopping: int | None,
    max_steps: int | None = None,
    has_validation: bool = True,
) -> Budget:
    """The run's epochs and patience: the user's where given, else sized from the data.

    Args:
        n_train: training images.
        batch_size, max_steps: the run's batch size and cap on steps an epoch.
        epochs: the user's ``--epochs`` (exact), or None for the data-sized default.
        early_stopping: the user's patience (0 = off), or None: on with :func:`auto_patience`
            when the epochs are sized from the data (and there is a validation set), else off.
        has_validation: early stopping needs validation images.
    """
    spe = steps_per_epoch(n_train, batch_size, max_steps)
    if epochs is None:
        n = auto_epochs(spe)
        why = f"{n} epochs of {spe} steps (sized from {n_train} training images)"
    else:
        n, why = int(epochs), f"{epochs} epochs (--epochs)"
    if early_stopping is None:
        patience = auto_patience(n) if epochs is None and has_validation else 0
    else:
        patience = int(early_stopping)
    share = unwatched_share(epochs, early_stopping)
    if patience and has_validation:
        why += f"; early stopping after {patience} epochs without a lower validation loss"
        if share:
            why += f", watched from epoch {int(share * n) + 1}"
    return Budget(n, patience if has_validation else 0, spe, why, share)


__all__ = [
    "Budget",
    "auto_epochs",
    "auto_patience",
    "plan_budget",
    "steps_per_epoch",
    "unwatched_share",
]
