"""Names and columns of the run folder's files, shared by the writers and the readers.

Torch-free on purpose: ``cnnkit report`` reads run folders without importing the trainer.
"""

from __future__ import annotations

#: Columns of ``history.csv``, one row per finished epoch, in this order.
HISTORY_FIELDS = (
    "epoch",
    "loss",
    "accuracy",
    "val_loss",
    "val_accuracy",
    "lr",
    "seconds",
    "images_per_second",
)
