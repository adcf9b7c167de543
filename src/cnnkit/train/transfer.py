"""Transfer learning runs: ``features``, ``frozen`` and ``finetune`` (``cnnkit train --strategy``).

- ``features``: run the frozen base once over all images, cache the feature maps on disk
  (keyed on the base's weights, the images and the preprocessing), train the head on
  them in seconds; no augmentation. The saved model is base + head, so predict works.
- ``frozen``: base frozen (no gradients, BatchNorm in inference mode), new head,
  augmentation in the loop.
- ``finetune``: head first with the base frozen (``epochs // 2`` epochs), then the top
  ``--unfreeze N`` block groups (0 = the top one) for the remaining epochs at a low
  rate: ``lr * BASE_LR_FACTOR`` for the base and ``lr * HEAD_LR_FACTOR`` for the head.

``lr`` is the head's learning rate. Without ``--lr`` it is ``HEAD_LR_MULTIPLIER`` times the
optimiser's usual default (Adam 1e-2): a new head on fixed features sees few steps on
small data, and at the default whole-network rate it is still underfitting when training
ends.
  BatchNorm stays in inference mode unless ``--bn train``.

Every strategy checks that the frozen part is bit-identical after training (parameters
and BatchNorm buffers) and records it in config.json under ``transfer``. The run folder
has the same files as :func:`cnnkit.train.train_run`'s and loads with ``load_run``.
"""

from __future__ import annotations

import hashlib
import math
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from cnnkit import __version__
from cnnkit.fileio import atomic_write_json
from cnnkit.models.transfer import (
    changed_since,
    describe,
    describe_text,
    freeze_base,
    frozen_snapshot,
    head_names,
    head_parameters,
    unfreeze_top,
)
from cnnkit.runs.inference import model_normalizer, predict_proba
from cnnkit.runs.layout import check_run_dir, create_run_dir
from cnnkit.runs.split import write_split
from cnnkit.runs.weights import save_weights
from cnnkit.train import data_source
from cnnkit.train.callbacks import EarlyStopping, ProgressBar, write_history
from cnnkit.train.config import TrainConfig
from cnnkit.train.loop import (
    Tensors,
    _per_step,
    build_optimizer,
    build_scheduler,
    fit,
)
from cnnkit.train.metrics import classification_metrics
from cnnkit.train.precision import choose_precision
from cnnkit.train.run import (
    RunResult,
    _write_augment_preview,
    _write_summary,
    resolved_config,
    write_predictions,
)

HEAD_LR_MULTIPLIER = 10.0  # head-only training without --lr: 10x the optimiser's default
BASE_LR_FACTOR = 0.01  # finetune phase 2: unfrozen base at head lr * 0.01
HEAD_LR_FACTOR = 0.1  # finetune phase 2: head at head lr * 0.1


def train_transfer_run(
    config: TrainConfig,
    out: str | Path,
    *,
    overwrite: bool = False,
    progress: bool = True,
    device: str | None = None,
) -> RunResult:
    """Train ``config`` (with ``strategy`` and ``pretrained`` set) into the run folder ``out``.

    Args:
        config: the run's settings; ``strategy`` is ``features``, ``frozen`` or ``finetune``.
        out: the run folder (refused if it exists, unless ``overwrite``).
        overwrite: replace an existing run folder.
        progress: show a progress bar on stderr.
        device: ``cpu``/``cuda``; default CUDA when available.

    Returns:
        A :class:`~cnnkit.train.run.RunResult`.

    Raises:
        ValueError: no strategy or weights, weights that do not fit, bad ``unfreeze``.
        FileNotFoundError: the weight file is missing.
    """
    if config.strategy is None or config.pretrained is None:
        raise ValueError(
            "train_transfer_run needs strategy and pretrained. Received: "
            f"strategy={config.strategy!r}, pretrained={config.pretrained!r}"
        )
    t0 = time.perf_counter()
    check_run_dir(out, overwrite=overwrite)  # refuses with the usual message, before any work
    data = data_source.load_run_data(config)
    model = data_source.build_model(config, data.arrays)  # loads the weights
    _new_head(model)
    train_idx, val_idx = data_source.split(data.arrays, config)
    data_source.check_split(data.arrays, train_idx, val_idx, config)
    run_dir = create_run_dir(out, overwrite=overwrite).path  # after the weights load
    write_split(run_dir / "split.csv", data.arrays, train_idx, val_idx)
    dev = torch.device(device or ("cuda" if torch.cuda.is_available() else "cpu"))
    prec = choose_precision(config.precision, dev)
    cfg = resolved_config(config, data, model, prec.to_dict())
    head_lr = config.lr if config.lr is not None else HEAD_LR_MULTIPLIER * config.resolved_lr
    cfg["lr"] = head_lr
    config = config.replace(lr=head_lr)
    atomic_write_json(run_dir / "config.json", cfg)
    run = _Run(config, run_dir, data.arrays, train_idx, val_idx, dev, progress)
    strategies = {"features": _features, "frozen": _frozen, "finetune": _finetune}
    history, transfer = strategies[str(config.strategy)](model, run)
    return _finish(run, model, cfg, history, transfer, t0)


def _new_head(model: Any) -> None:
    """A new task gets a new classifier, even when the weights' head had as many classes.

    The last layer starts at zero (uniform predictions); a VGG/AlexNet hidden head keeps its
    pretrained dense layers.
    """
    from cnnkit.models.pretrained import zero_classifier

    model.reset_classifier(model.num_classes)
    zero_classifier(model)
    info = getattr(model, "pretrained_info", None)
    if info is not None and not info.fresh_head:
        info.fresh_head = True
        info.notes.append("classifier replaced for the new task")


class _Run:
    """What every strategy needs: config, folder, data, split, device."""

    def __init__(self, config, run_dir, arrays, train_idx, val_idx, dev, progress) -> None:
        self.config, self.run_dir, self.arrays, self.dev = config, run_dir, arrays, dev
        self.train_idx, self.val_idx, self.progress = train_idx, val_idx, progress
        self.tr = Tensors.from_any(arrays.subset(train_idx))
        self.va = Tensors.from_any(arrays.subset(val_idx)) if len(val_idx) else None

    def callbacks(self) -> list[Any]:
        cbs: list[Any] = [ProgressBar(enabled=None if self.progress else False)]
        if self.config.early_stopping:
            cbs.insert(0, EarlyStopping(self.config.early_stopping))
        return cbs


def _frozen(model, run: _Run) -> tuple[list[dict], dict[str, Any]]:
    """Base frozen, new head, augmentation in the loop."""
    freeze_base(model)
    info = describe(model, "frozen")
    before = frozen_snapshot(model)
    augment = data_source.build_augment(run.config)
    _write_augment_preview(run.run_dir, run.arrays, run.train_idx, augment, run.config.seed)
    result = fit(
        model,
        run.tr,
        run.va,
        run.config,
        callbacks=run.callbacks(),
        augment=augment,
        device=run.dev,
    )
    info["frozen_changed"] = changed_since(before, model)
    return result.history, info


def _finetune(model, run: _Run) -> tuple[list[dict], dict[str, Any]]:
    """Head first with the base frozen, then the top N block groups at a low rate."""
    cfg = run.config
    head_epochs = max(1, cfg.epochs // 2)
    tune_epochs = max(1, cfg.epochs - head_epochs)
    augment = data_source.build_augment(cfg)
    _write_augment_preview(run.run_dir, run.arrays, run.train_idx, augment, cfg.seed)
    freeze_base(model)
    first = fit(
        model,
        run.tr,
        run.va,
        cfg.replace(epochs=head_epochs),
        callbacks=run.callbacks(),
        augment=augment,
        device=run.dev,
    )
    n = cfg.unfreeze or 1
    unfreeze_top(model, n, bn=cfg.bn)
    info = describe(model, cfg.bn)
    before = frozen_snapshot(model)
    groups = _param_groups(model, cfg.resolved_lr)
    info["phases"] = {
        "head_epochs": head_epochs,
        "finetune_epochs": tune_epochs,
        "base_lr": groups[0]["lr"],
        "head_lr": groups[1]["lr"],
    }
    tune_cfg = cfg.replace(epochs=tune_epochs, seed=cfg.seed + 1)
    second = fit_param_groups(
        model,
        run.tr,
        run.va,
        tune_cfg,
        groups,
        callbacks=run.callbacks(),
        augment=augment,
        device=run.dev,
    )
    info["frozen_changed"] = changed_since(before, model)
    history = first.history + [{**r, "epoch": r["epoch"] + head_epochs} for r in second.history]
    return history, info


def _param_groups(model, lr: float) -> list[dict[str, Any]]:
    """Discriminative rates: unfrozen base parameters slower than the head."""
    head = {id(p) for p in head_parameters(model)}
    base = [p for p in model.parameters() if p.requires_grad and id(p) not in head]
    return [
        {"params": base, "lr": lr * BASE_LR_FACTOR},
        {"params": [p for p in model.parameters() if id(p) in head], "lr": lr * HEAD_LR_FACTOR},
    ]


def fit_param_groups(
    model,
    train,
    val,
    config: TrainConfig,
    groups: list[dict[str, Any]],
    *,
    callbacks=None,
    augment=None,
    device=None,
) -> Any:
    """:func:`cnnkit.train.fit` with the optimiser over explicit parameter groups.

    Same loop, schedule and callbacks as ``fit``; each group keeps its own learning rate
    (the schedule scales them together). Empty groups are dropped.
    """
    return fit(
        model,
        train,
        val,
        config,
        callbacks=callbacks,
        augment=augment,
        device=device,
        param_groups=groups,
    )


# --- features: cached base outputs, head trained on them ---------------------------------

FEATURE_CACHE_VERSION = 1


def feature_cache_key(model, images: np.ndarray) -> str:
    """sha256 over the base's weights, the images and the preprocessing (not the head).

    Shape:
        images: ``(N, C, H, W)`` uint8.
    """
    card = getattr(model, "card", None)
    h = hashlib.sha256()
    pre = (
        FEATURE_CACHE_VERSION,
        getattr(card, "name", type(model).__name__),
        getattr(card, "mean", None),
        getattr(card, "std", None),
        tuple(images.shape),
    )
    h.update(repr(pre).encode())
    head = tuple(n + "." for n in head_names(model))
    for name, t in sorted(model.state_dict().items()):
        if not name.startswith(head):
            h.update(name.encode())
            h.update(t.detach().cpu().contiguous().view(-1).view(torch.uint8).numpy().tobytes())
    h.update(np.ascontiguousarray(images).tobytes())
    return h.hexdigest()


def cached_features(
    model, images: np.ndarray, dev: torch.device, batch_size: int = 256
) -> tuple[torch.Tensor, bool, Path]:
    """``model.forward_features`` of every image, from the on-disk cache when it matches.

    The cache lives in ``$CNNKIT_CACHE_DIR/features/<key>.safetensors``; any change to
    the base's weights, the images or the preprocessing gives a new key (a miss).

    Returns:
        ``(features, hit, path)``; features float32 on the CPU.

    Shape:
        images: ``(N, C, H, W)`` uint8 -> features ``(N, num_features, h, w)``.
    """
    from safetensors.torch import load_file, save

    from cnnkit.data.cache import cache_subdir
    from cnnkit.fileio import atomic_write_bytes

    path = cache_subdir("features") / f"{feature_cache_key(model, images)}.safetensors"
    if path.is_file():
        feats = load_file(str(path))["features"]
        if len(feats) == len(images):
            return feats, True, path
    model.eval()
    norm = model_normalizer(model, images.shape[1], dev)
    out = []
    with torch.inference_mode():
        for i in range(0, len(images), batch_size):
            x = norm(torch.from_numpy(np.array(images[i : i + batch_size])).to(dev))
            out.append(model.forward_features(x).float().cpu())
    feats = torch.cat(out).contiguous()
    atomic_write_bytes(path, save({"features": feats}))
    return feats, False, path


def _features(model, run: _Run) -> tuple[list[dict], dict[str, Any]]:
    """Run the frozen base once (cached), train the head on the features."""
    freeze_base(model)
    info = describe(model, "frozen")
    before = frozen_snapshot(model)
    model.to(run.dev)
    feats, hit, path = cached_features(model, run.arrays.images, run.dev)
    info["feature_cache"] = {"hit": hit, "path": str(path), "shape": list(feats.shape[1:])}
    if run.config.augment:
        info["augment_ignored"] = "features are computed once, without augmentation"
    tr_f = feats[torch.as_tensor(run.train_idx)]
    va_f = feats[torch.as_tensor(run.val_idx)] if len(run.val_idx) else None
    history = _train_head(model, tr_f, run.tr.labels, va_f, run.va, run)
    info["frozen_changed"] = changed_since(before, model)
    return history, info


def _train_head(model, tr_f, tr_y, va_f, va, run: _Run) -> list[dict[str, float]]:
    """Mini-batch training of ``model.forward_head`` on cached features."""
    cfg = run.config
    gen = torch.Generator().manual_seed(cfg.seed)
    torch.manual_seed(cfg.seed)
    opt = build_optimizer(model, cfg)  # only the head requires gradients
    steps = math.ceil(len(tr_f) / cfg.batch_size)
    sched = build_scheduler(opt, cfg, steps)
    history = []
    for epoch in range(1, cfg.epochs + 1):
        t0 = time.perf_counter()
        model.train()
        loss_sum, correct = 0.0, 0
        for idx in torch.randperm(len(tr_f), generator=gen).split(cfg.batch_size):
            f, y = tr_f[idx].to(run.dev), tr_y[idx].to(run.dev)
            logits = model.forward_head(f)  # (B, C, h, w) -> (B, K)
            loss = F.cross_entropy(logits, y, label_smoothing=cfg.label_smoothing)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            if sched is not None and _per_step(cfg):
                sched.step()
            loss_sum += float(loss.detach()) * len(idx)
            correct += int((logits.argmax(1) == y).sum())
        history.append(
            _head_row(model, epoch, loss_sum, correct, len(tr_f), va_f, va, opt, t0, run)
        )
        if sched is not None and not _per_step(cfg):
            sched.step(history[-1]["val_loss"]) if cfg.schedule == "plateau" else sched.step()
    return history


@torch.inference_mode()
def _head_row(model, epoch, loss_sum, correct, n, va_f, va, opt, t0, run) -> dict[str, float]:
    seconds = time.perf_counter() - t0
    row = {
        "epoch": epoch,
        "loss": loss_sum / n,
        "accuracy": correct / n,
        "val_loss": math.nan,
        "val_accuracy": math.nan,
        "lr": opt.param_groups[0]["lr"],
        "seconds": seconds,
        "images_per_second": n / max(seconds, 1e-9),
    }
    if va_f is not None:
        model.eval()
        logits = torch.cat([model.forward_head(f.to(run.dev)) for f in va_f.split(512)]).cpu()
        row["val_loss"] = float(F.cross_entropy(logits, va.labels))
        row["val_accuracy"] = float((logits.argmax(1) == va.labels).float().mean())
    return row


# --- the run folder -----------------------------------------------------------------------


def _finish(run: _Run, model, cfg: dict, history: list, transfer: dict, t0: float) -> RunResult:
    transfer.update(
        strategy=run.config.strategy,
        pretrained=run.config.pretrained,
        weights=getattr(getattr(model, "pretrained_info", None), "to_dict", dict)(),
    )
    write_history(run.run_dir / "history.csv", history)
    save_weights(
        run.run_dir / "model.safetensors",
        model.state_dict(),
        {"model": run.config.model, "cnnkit": __version__, "strategy": str(run.config.strategy)},
    )
    metrics = _evaluate(run, model)
    seconds = time.perf_counter() - t0
    cfg["transfer"] = transfer
    cfg["timing"] = {"total_seconds": seconds, "train_seconds": sum(r["seconds"] for r in history)}
    atomic_write_json(run.run_dir / "config.json", cfg)
    _write_summary(run.run_dir, model, run.arrays.image_shape)
    with open(run.run_dir / "summary.txt", "a", encoding="utf-8") as f:
        f.write(describe_text(transfer) + "\n")
    return RunResult(run.run_dir, metrics, history, seconds)


def _evaluate(run: _Run, model) -> dict[str, Any]:
    """metrics.json and predictions.csv from the whole saved model (base + head)."""
    if run.va is None:
        return {}
    va = run.arrays.subset(run.val_idx)
    prec = choose_precision("fp32", run.dev)
    norm = model_normalizer(model, va.images.shape[1], run.dev)
    probs = predict_proba(model, torch.from_numpy(va.images), norm, prec, run.dev)
    metrics = classification_metrics(va.labels, probs.numpy(), run.arrays.class_names)
    atomic_write_json(run.run_dir / "metrics.json", metrics)
    write_predictions(run.run_dir / "predictions.csv", va, probs)
    return metrics
