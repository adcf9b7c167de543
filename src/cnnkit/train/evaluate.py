"""``cnnkit evaluate``: a run on its own validation split, another folder, or ``NAME:test``."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from cnnkit.errors import ModelOutputError
from cnnkit.runs import LoadedRun, load_run, read_split
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
    run_dir: str | Path, data: str | None = None, *, tta: int = 0, seed: int = 0
) -> dict[str, Any]:
    """Metrics (accuracy with Wilson 95% CI, per-class P/R/F1, confusion matrix, log loss).

    Args:
        run_dir: the run folder.
        data: a folder or ``NAME[:split]``; None = the run's saved validation split.
        tta: test-time augmentation: average the probabilities of the image and ``tta``
            augmented copies (the run's own augmentation settings; a horizontal flip if the
            run had none).
        seed: seeds the test-time augmentation draws.
    """
    if tta < 0:
        raise ValueError(f"tta must be >= 0. Received: tta={tta}")
    run = load_run(run_dir)
    arrays = evaluation_arrays(run, data)
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
    import torch

    from cnnkit.data import Augment

    settings = run.config.get("augment") or {"horizontal_flip": True}
    augment = Augment(**settings)
    gen = torch.Generator().manual_seed(seed)
    x = torch.from_numpy(np.ascontiguousarray(images))
    total = probs.copy()
    for _ in range(n):
        total += run.predict_proba(augment(x, generator=gen)).numpy()
    return total / (n + 1)
