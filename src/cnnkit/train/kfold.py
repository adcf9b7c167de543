"""Stratified K-fold cross-validation of a run: small data sets mislead on one split.

``RUN/fold-1 ... fold-K`` are ordinary run folders; ``RUN/cv.json`` holds the per-fold
accuracies with their mean and standard deviation; ``RUN/metrics.json`` and
``RUN/predictions.csv`` pool the out-of-fold predictions (each image predicted once, by
the model that did not train on it).
"""

from __future__ import annotations

import csv
import shutil
import statistics
import sys
from pathlib import Path
from typing import Any

import numpy as np
from sklearn.model_selection import StratifiedKFold

from cnnkit.fileio import atomic_write_json
from cnnkit.runs.layout import check_run_dir, create_run_dir
from cnnkit.train import data_source
from cnnkit.train.config import TrainConfig
from cnnkit.train.metrics import classification_metrics
from cnnkit.train.run import RunResult, train_run


def fold_indices(labels: np.ndarray, folds: int, seed: int) -> list[tuple[np.ndarray, np.ndarray]]:
    """Stratified (train, validation) index pairs, seeded.

    Raises:
        ValueError: a class has fewer images than ``folds``.
    """
    counts = np.bincount(labels)
    if counts[counts > 0].min() < folds:
        raise ValueError(
            f"folds={folds} needs at least {folds} images per class; the smallest class "
            f"has {int(counts[counts > 0].min())}"
        )
    skf = StratifiedKFold(n_splits=folds, shuffle=True, random_state=seed)
    return [(tr, va) for tr, va in skf.split(np.zeros(len(labels)), labels)]


def train_kfold(
    config: TrainConfig, out: str | Path, *, overwrite: bool = False, progress: bool = True
) -> RunResult:
    """Train ``config.folds`` runs, one per fold, and summarise them in ``out``."""
    check_run_dir(out, overwrite=overwrite)
    data = data_source.load_run_data(config)
    config = data_source.with_model(config, data)
    if data.choice is not None:
        sys.stderr.write(data.choice.describe() + "\n")
    run_dir = create_run_dir(out, overwrite=overwrite).path
    per_fold: list[dict[str, Any]] = []
    history: list[dict[str, float]] = []
    seconds = 0.0
    for k, split in enumerate(fold_indices(data.arrays.labels, config.folds, config.seed), 1):
        res = train_run(config, run_dir / f"fold-{k}", progress=progress, data=data, split=split)
        per_fold.append({"fold": k, "accuracy": res.metrics["accuracy"], "n": res.metrics["n"]})
        seconds += res.seconds
        history = history or res.history
    accs = [f["accuracy"] for f in per_fold]
    cv = {
        "folds": config.folds,
        "accuracy_mean": statistics.fmean(accs),
        "accuracy_sd": statistics.stdev(accs) if len(accs) > 1 else 0.0,
        "per_fold": per_fold,
    }
    atomic_write_json(run_dir / "cv.json", cv)
    metrics = _pool(run_dir, config.folds, data.arrays.class_names)
    metrics.update({k: cv[k] for k in ("accuracy_mean", "accuracy_sd")})
    atomic_write_json(run_dir / "metrics.json", metrics)
    _copy_overview(run_dir)
    return RunResult(run_dir, metrics, history, seconds)


def _pool(run_dir: Path, folds: int, class_names: list[str]) -> dict[str, Any]:
    """Out-of-fold metrics from the folds' predictions.csv files (also written pooled)."""
    index = {n: i for i, n in enumerate(class_names)}
    rows: list[dict[str, str]] = []
    for k in range(1, folds + 1):
        with open(run_dir / f"fold-{k}" / "predictions.csv", newline="", encoding="utf-8") as f:
            rows += list(csv.DictReader(f))
    with open(run_dir / "predictions.csv", "w", newline="", encoding="utf-8") as f:
        w = csv.DictWriter(
            f, fieldnames=["path", "label", "predicted", "probability", "loss"], lineterminator="\n"
        )
        w.writeheader()
        w.writerows(rows)
    y = np.array([index[r["label"]] for r in rows])
    # Pooled metrics need class probabilities; a one-hot of each prediction at its probability
    # keeps accuracy, P/R/F1 and the confusion matrix exact (log loss is the folds' mean).
    probs = np.full((len(rows), len(class_names)), 0.0)
    for i, r in enumerate(rows):
        p = float(r["probability"])
        probs[i] = (1 - p) / max(len(class_names) - 1, 1)
        probs[i, index[r["predicted"]]] = p
    m = classification_metrics(y, probs, class_names)
    m["log_loss"] = float(np.mean([float(r["loss"]) for r in rows]))
    return m


def _copy_overview(run_dir: Path) -> None:
    """Top-level config/history/summary from fold 1, so the report has curves and settings."""
    for name in ("config.json", "history.csv", "summary.txt", "augment.png"):
        src = run_dir / "fold-1" / name
        if src.is_file():
            shutil.copyfile(src, run_dir / name)
