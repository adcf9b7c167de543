"""``cnnkit evaluate``: a run on its own validation split, another folder, or ``NAME:test``."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np
import torch

from cnnkit.data import Augment
from cnnkit.data.arrays import parse_dataset_path
from cnnkit.errors import ModelOutputError
from cnnkit.runs import LoadedRun, load_run, read_split, training_paths
from cnnkit.runs.layout import SPLIT
from cnnkit.train import data_source
from cnnkit.train.config import TrainConfig
from cnnkit.train.metrics import classification_metrics
from cnnkit.train.run import saved_settings


def _run_config(run: LoadedRun, data: str | None) -> TrainConfig:
    cfg = run.config
    base = saved_settings(cfg)
    base.update(image_size=list(cfg["image_size"]), color_mode=cfg["color_mode"])
    if data is not None:
        base["data"] = data
    return TrainConfig.from_dict(base)


def evaluation_arrays(run: LoadedRun, data: str | None) -> Any:
    """The images to evaluate: the saved validation split, or ``data`` preprocessed as the run."""
    config = _run_config(run, data)
    loaded = data_source.load_run_data(config)
    arrays = loaded.arrays
    if data is None:
        _, val_idx = read_split(run.path / "split.csv", arrays)
        return arrays.subset(val_idx)
    return _align_classes(arrays, run.class_names, data)


def _key(path: str) -> str:
    """A file's real absolute path (a named dataset's pseudo-path as it is)."""
    return path if parse_dataset_path(path) else os.path.realpath(path)


def trained_on(run: LoadedRun) -> set[str]:
    """The images the run trained on, as :func:`_key` s (from ``split.csv``).

    File paths in ``split.csv`` are as the data folder was named when training (maybe
    relative); the folder's absolute path recorded then (``data_summary.root``) places them.
    """
    cfg = run.config
    root = (cfg.get("data_summary") or {}).get("root")
    given = str(cfg.get("data", ""))
    keys = set()
    for path in training_paths(run.path / SPLIT):
        if parse_dataset_path(path) is None and root and not os.path.isabs(path):
            path = os.path.join(root, os.path.relpath(path, given))
        keys.add(_key(path))
    return keys


def _leave_out_training(run: LoadedRun, arrays: Any, data: str) -> tuple[Any, int]:
    """``arrays`` without the images the run trained on, and how many were left out.

    Raises:
        ValueError: every image of ``data`` was a training image.
    """
    trained = trained_on(run)
    keep = [i for i, p in enumerate(arrays.file_paths) if _key(p) not in trained]
    left_out = len(arrays) - len(keep)
    if left_out and not keep:
        raise ValueError(
            f"{data}: all {left_out} images are images the run trained on, so they say nothing "
            "about new images; evaluate other images, or pass --include-train "
            "(include_train=True) to count them anyway"
        )
    return (arrays.subset(np.asarray(keep, dtype=np.int64)) if left_out else arrays), left_out


def _align_classes(arrays: Any, names: list[str], data: str) -> Any:
    """Map the evaluation data's class names onto the run's class indices."""
    index = {n: i for i, n in enumerate(names)}
    unknown = [n for n in arrays.class_names if n not in index]
    if unknown:
        raise ValueError(f"{data}: classes {unknown[:5]} are not classes of the run ({names[:10]})")
    remap = np.array([index[n] for n in arrays.class_names], dtype=np.int64)
    arrays.labels = remap[arrays.labels]
    arrays.class_names = list(names)
    return arrays


def evaluate_run(
    run_dir: str | Path,
    data: str | None = None,
    *,
    tta: int = 0,
    seed: int = 0,
    include_train: bool = False,
) -> dict[str, Any]:
    """Metrics (accuracy with Wilson 95% CI, per-class P/R/F1, confusion matrix, log loss).

    Evaluating on DATA that holds the run's own training images leaves those out (counted
    in ``excluded_train``): a model scored on what it learned looks better than it is.

    Args:
        run_dir: the run folder.
        data: a folder or ``NAME[:split]``; None = the run's saved validation split.
        include_train: count the run's training images too.
        tta: test-time augmentation: average the probabilities of the image and ``tta``
            augmented copies (the run's own augmentation settings; a horizontal flip if the
            run had none).
        seed: seeds the test-time augmentation draws.
    """
    if tta < 0:
        raise ValueError(f"tta must be >= 0. Received: tta={tta}")
    run = load_run(run_dir)
    arrays = evaluation_arrays(run, data)
    left_out = 0
    if data is not None and not include_train:
        arrays, left_out = _leave_out_training(run, arrays, data)
    if len(arrays) == 0:
        raise ValueError(
            f"nothing to evaluate: the {'validation split' if data is None else data} is empty"
        )
    probs = run.predict_proba(arrays.images).numpy()
    if tta:
        probs = _tta_probs(run, arrays.images, probs, tta, seed)
    _check_finite(probs, run.path)
    metrics = classification_metrics(arrays.labels, probs, run.class_names)
    metrics["tta"] = tta
    metrics["excluded_train"] = left_out
    return metrics


def _check_finite(probs: np.ndarray, run_dir: Path) -> None:
    """Refuse NaN/infinite probabilities naming the weights (not sklearn's "Input contains NaN")."""
    bad = int((~np.isfinite(probs).all(axis=1)).sum())
    if bad:
        raise ModelOutputError(
            f"{run_dir / 'model.safetensors'}: the model's output is not a number (NaN or "
            f"infinity) for {bad} of {len(probs)} images; the weights may hold NaN or infinity"
        )


def _tta_probs(
    run: LoadedRun, images: np.ndarray, probs: np.ndarray, n: int, seed: int
) -> np.ndarray:
    settings = run.config.get("augment") or {"horizontal_flip": True}
    augment = Augment(**settings)
    gen = torch.Generator().manual_seed(seed)
    x = torch.from_numpy(np.ascontiguousarray(images))
    total = probs.copy()
    for _ in range(n):
        total += run.predict_proba(augment(x, generator=gen)).numpy()
    return total / (n + 1)
