"""A training run as a folder: data -> split -> model -> fit -> weights, metrics, predictions.

``train_run(config, out)`` writes the run folder described in DESIGN.md (``config.json``,
``split.csv``, ``model.safetensors``, ``checkpoint/``, ``history.csv``, ``metrics.json``,
``predictions.csv``, ``summary.txt``, ``augment.png``); ``resume_run(out)`` continues an
interrupted one. Rendering ``report.html`` is the report stage's job.
"""

from __future__ import annotations

import csv
import io
import platform
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from cnnkit import __version__
from cnnkit.allocator import keep_freed_memory
from cnnkit.data import native
from cnnkit.errors import RunFolderError
from cnnkit.fileio import atomic_write_bytes, atomic_write_json, atomic_write_text
from cnnkit.runs import layout
from cnnkit.runs.config import read_run_config
from cnnkit.runs.inference import model_normalizer, predict_proba
from cnnkit.runs.layout import (
    RunDir,
    adopt_run_dir,
    check_run_dir,
    create_run_dir,
    discard_if_unstarted,
)
from cnnkit.runs.split import read_split, write_split
from cnnkit.runs.weights import save_weights
from cnnkit.train import data_source, distributed
from cnnkit.train.callbacks import Checkpoint, CSVLogger, EarlyStopping, ProgressBar
from cnnkit.train.checkpoint import load_checkpoint
from cnnkit.train.config import TrainConfig, changed_keys
from cnnkit.train.loop import FitResult, Tensors, batch_shape, cpu_threads, fit
from cnnkit.train.metrics import classification_metrics
from cnnkit.train.precision import cpu_model

CHECKPOINT = Path(layout.CHECKPOINT)


@dataclass
class RunResult:
    """The outcome of :func:`train_run`: where it is, its metrics and how long it took."""

    run_dir: Path
    metrics: dict[str, Any]
    history: list[dict[str, float]]
    seconds: float


def prepare_run_dir(out: str | Path, overwrite: bool) -> Path:
    """Create the run folder ``out`` (see :func:`cnnkit.runs.create_run_dir`)."""
    return create_run_dir(out, overwrite=overwrite).path


def environment() -> dict[str, Any]:
    """Versions and hardware, recorded in config.json and the report."""
    return {
        "cnnkit": __version__,
        "torch": torch.__version__,
        "python": platform.python_version(),
        "platform": platform.platform(),
        "cpu": cpu_model(),
        "threads": torch.get_num_threads(),
        "cpu_capability": torch.backends.cpu.get_cpu_capability(),
        "device": torch.cuda.get_device_name() if torch.cuda.is_available() else "cpu",
        "allocator": keep_freed_memory() or "system default",
        "warp": native.describe(),
    }


def resolved_config(
    config: TrainConfig,
    data: data_source.RunData,
    model: torch.nn.Module,
    precision: dict[str, Any],
) -> dict[str, Any]:
    """config.json: every setting, resolved, plus classes, preprocessing and environment."""
    card = getattr(model, "card", None)
    c, h, w = data.arrays.image_shape
    d = config.to_dict()
    d.update(
        image_size=[h, w],
        color_mode=data.color_mode,
        in_chans=c,
        class_names=list(data.arrays.class_names),
        num_classes=len(data.arrays.class_names),
        mean=list(getattr(card, "mean", (0.0,)) or (0.0,)),
        std=list(getattr(card, "std", (1.0,)) or (1.0,)),
        lr=config.resolved_lr,
        requested_lr=config.lr,
        precision=precision,
        requested_precision=config.precision,
        environment=environment(),
        data_summary=data.summary(),
        cnnkit_version=__version__,
    )
    return d


def _callbacks(run_dir: Path, config: TrainConfig, meta: dict[str, Any], progress: bool):
    cbs = [
        ProgressBar(enabled=None if progress else False),
        CSVLogger(run_dir / "history.csv"),
        Checkpoint(run_dir / CHECKPOINT, every=config.checkpoint_every, meta=meta),
    ]
    if config.early_stopping:
        cbs.insert(0, EarlyStopping(config.early_stopping))
    return cbs


def train_run(
    config: TrainConfig,
    out: str | Path,
    *,
    overwrite: bool = False,
    progress: bool = True,
    device: str | None = None,
    data: data_source.RunData | None = None,
    split: tuple[np.ndarray, np.ndarray] | None = None,
) -> RunResult:
    """Train ``config`` into the run folder ``out`` and evaluate on its validation split.

    Args:
        config: the run's settings.
        out: the run folder (refused if it exists, unless ``overwrite``).
        progress: show a progress bar on stderr.
        device: ``cpu``/``cuda``; default CUDA when available.
        data, split: already loaded data and train/validation indices (k-fold uses these).
    """
    if config.strategy is not None:  # transfer learning has its own stages
        from cnnkit.train.transfer import train_transfer_run

        return train_transfer_run(
            config, out, overwrite=overwrite, progress=progress, device=device
        )
    main = distributed.is_main()
    if main:
        check_run_dir(out, overwrite=overwrite)  # refuse before any decoding
    data = data or _load_data_once(config)
    train_idx, val_idx = split if split is not None else data_source.split(data.arrays, config)
    data_source.check_split(data.arrays, train_idx, val_idx, config)
    run = create_run_dir(out, overwrite=overwrite) if main else RunDir(Path(out))
    distributed.run_dir_ready(run.path)
    try:
        return _fit_and_save(
            config, run.path, data, train_idx, val_idx, None, progress, device, new=True
        )
    except Exception:
        if main and not (run.path / CHECKPOINT).is_file():
            discard_if_unstarted(run, keep=("augment.png",))  # nothing trained: leave nothing
        raise


def _load_data_once(config: TrainConfig) -> data_source.RunData:
    """Rank 0 decodes (and fills the cache) first; the other ranks then read the cache."""
    data = data_source.load_run_data(config) if distributed.is_main() else None
    distributed.barrier()
    return data or data_source.load_run_data(config)


def saved_settings(saved: dict[str, Any]) -> dict[str, Any]:
    """The :class:`TrainConfig` fields of a saved config.json (as the user asked for them)."""
    fields = set(TrainConfig.__dataclass_fields__)
    base = {k: v for k, v in saved.items() if k in fields}
    base["lr"] = saved.get("requested_lr", base.get("lr"))
    base["precision"] = saved.get("requested_precision", "auto")
    return base


def resume_run(
    out: str | Path,
    *,
    overrides: dict[str, Any] | None = None,
    progress: bool = True,
    device: str | None = None,
) -> RunResult:
    """Continue the run in ``out`` from its last checkpoint, with the saved split.

    Raises:
        RunFolderError: no run there, or ``overrides`` change what the run is (listed).
    """
    run_dir = adopt_run_dir(out).path
    saved = read_run_config(run_dir)
    if saved.get("strategy"):
        raise RunFolderError(
            f"cannot resume {run_dir}: transfer runs (strategy={saved['strategy']!r}) train in "
            "minutes and keep no checkpoint; train it again with --overwrite"
        )
    base = saved_settings(saved)
    config = TrainConfig.from_dict({**base, **(overrides or {})})
    diff = changed_keys(TrainConfig.from_dict(base).to_dict(), config.to_dict())
    if diff:
        raise RunFolderError(f"cannot resume {run_dir} with a changed config: {', '.join(diff)}")
    ckpt_path = run_dir / CHECKPOINT
    ckpt = load_checkpoint(ckpt_path) if ckpt_path.is_file() else None
    data = _load_data_once(config)
    train_idx, val_idx = read_split(run_dir / layout.SPLIT, data.arrays)
    return _fit_and_save(config, run_dir, data, train_idx, val_idx, ckpt, progress, device)


def _fit_and_save(
    config, run_dir, data, train_idx, val_idx, ckpt, progress, device, new=False
) -> RunResult:
    t0 = time.perf_counter()
    arrays = data.arrays
    model = data_source.build_model(config, arrays)
    augment = data_source.build_augment(config)
    from cnnkit.train.precision import choose_for_model

    dev = device or ("cuda" if torch.cuda.is_available() else "cpu")
    tr = Tensors.from_any(arrays.subset(train_idx))
    with cpu_threads(config.threads):  # time candidates with the threads fit will use
        prec = choose_for_model(config.precision, dev, model, batch_shape(tr, config))
    cfg = resolved_config(config, data, model, prec.to_dict())
    cfg["distributed"] = distributed.describe()
    main = distributed.is_main()
    if main:  # config first: a run killed from here on can be resumed
        atomic_write_json(run_dir / layout.CONFIG, cfg)
        if new:
            write_split(run_dir / layout.SPLIT, arrays, train_idx, val_idx)
        _write_augment_preview(run_dir, arrays, train_idx, augment, config.seed)
    va = Tensors.from_any(arrays.subset(val_idx)) if len(val_idx) else None
    meta = {"model": config.model, "seed": config.seed}
    cbs = _callbacks(run_dir, config, meta, progress) if main else []
    result: FitResult = fit(
        model, tr, va, config, callbacks=cbs, augment=augment, device=dev, resume_from=ckpt
    )
    if not main:  # only rank 0 writes the run folder
        return RunResult(run_dir, {}, result.history, time.perf_counter() - t0)
    save_weights(
        run_dir / layout.WEIGHTS,
        model.state_dict(),
        {"model": config.model, "cnnkit": __version__},
    )
    metrics = _evaluate_and_save(run_dir, model, arrays, val_idx, result)
    seconds = time.perf_counter() - t0
    cfg["timing"] = {
        "total_seconds": seconds,
        "train_seconds": sum(r["seconds"] for r in result.history),
    }
    atomic_write_json(run_dir / layout.CONFIG, cfg)
    _write_summary(run_dir, model, arrays.image_shape)
    return RunResult(run_dir, metrics, result.history, seconds)


def _evaluate_and_save(run_dir: Path, model, arrays, val_idx, result: FitResult) -> dict[str, Any]:
    if not len(val_idx):
        return {}
    va = arrays.subset(val_idx)
    dev = next(model.parameters()).device
    norm = model_normalizer(model, va.images.shape[1], dev)
    probs = predict_proba(model, torch.from_numpy(va.images), norm, result.precision, dev)
    metrics = classification_metrics(va.labels, probs.numpy(), arrays.class_names)
    atomic_write_json(run_dir / layout.METRICS, metrics)
    write_predictions(run_dir / layout.PREDICTIONS, va, probs)
    return metrics


def write_predictions(path: Path, va: Any, probs: torch.Tensor) -> None:
    """predictions.csv: path,label,predicted,probability,loss for each validation image."""
    labels = torch.as_tensor(va.labels)
    losses = F.nll_loss(torch.log(probs.clamp_min(1e-12)), labels, reduction="none")
    conf, pred = probs.max(1)
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(["path", "label", "predicted", "probability", "loss"])
    names = va.class_names
    for i in range(len(labels)):
        w.writerow(
            [
                va.file_paths[i] if va.file_paths else str(i),
                names[int(labels[i])],
                names[int(pred[i])],
                f"{float(conf[i]):.6f}",
                f"{float(losses[i]):.6f}",
            ]
        )
    atomic_write_text(path, buf.getvalue())


def _write_summary(run_dir: Path, model: torch.nn.Module, shape: tuple[int, int, int]) -> None:
    try:
        from cnnkit.models import summary

        text = str(summary(model.cpu().float(), input_shape=shape))
    except (ImportError, ValueError, RuntimeError) as e:
        text = f"(summary unavailable: {e})"
    atomic_write_text(run_dir / layout.SUMMARY, text + "\n")


def _write_augment_preview(run_dir: Path, arrays, train_idx, augment, seed: int) -> None:
    if augment is None:
        return
    from cnnkit.data import preview_grid

    sample = arrays.subset(train_idx[: min(4, len(train_idx))])
    atomic_write_bytes(
        run_dir / "augment.png", preview_grid(sample.images, augment, n=16, seed=seed)
    )
