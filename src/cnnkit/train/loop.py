"""The training loop: one readable function, batches straight from in-memory uint8 tensors.

Per step: gather a batch of uint8 images by index, augment it (one batched affine warp),
scale and normalise in one fused op, convert to channels_last, forward under autocast,
backward, step. No per-sample Python work, no worker processes.
"""

from __future__ import annotations

import contextlib
import math
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from cnnkit.allocator import keep_freed_memory
from cnnkit.errors import CnnkitError
from cnnkit.runs.inference import (
    Normalizer,
    Precision,
    model_normalizer,
    predict_proba,
    prepare_batch,
)
from cnnkit.train import distributed
from cnnkit.train.callbacks import Callback, CallbackList, TrainState
from cnnkit.train.config import TrainConfig
from cnnkit.train.precision import choose_for_model


class TrainingDiverged(CnnkitError):
    """The loss became NaN or infinite; training stopped at the named step."""


@dataclass
class Tensors:
    """A labelled image set in memory.

    Shape:
        images: ``(N, C, H, W)`` uint8 (0..255).
        labels: ``(N,)`` int64 class indices.
    """

    images: torch.Tensor
    labels: torch.Tensor

    def __post_init__(self) -> None:
        if self.images.ndim != 4:
            raise ValueError(
                f"images must be (N, C, H, W). Received shape {tuple(self.images.shape)}"
            )
        if len(self.images) != len(self.labels):
            raise ValueError(
                f"images and labels differ in length: {len(self.images)} vs {len(self.labels)}"
            )

    def __len__(self) -> int:
        return len(self.labels)

    @classmethod
    def from_any(cls, data: Any) -> Tensors:
        """From ``Tensors``, an object with ``images``/``labels``, or an (images, labels) pair."""
        if isinstance(data, cls):
            return data
        if hasattr(data, "images") and hasattr(data, "labels"):
            images, labels = data.images, data.labels
        else:
            images, labels = data
        return cls(_as_tensor(images, torch.uint8), _as_tensor(labels, torch.int64))


def _as_tensor(a: Any, dtype: torch.dtype) -> torch.Tensor:
    if isinstance(a, torch.Tensor):
        return a.to(dtype)
    return torch.from_numpy(np.ascontiguousarray(a)).to(dtype)


def _epoch_generator(seed: int, epoch: int) -> torch.Generator:
    # One independent stream per (seed, epoch): resuming at an epoch boundary replays it exactly.
    return torch.Generator().manual_seed((seed * 1_000_003 + epoch * 7919) % (2**63))


def build_optimizer(
    model: torch.nn.Module, config: TrainConfig, param_groups: list[dict[str, Any]] | None = None
) -> torch.optim.Optimizer:
    """The optimiser named in the config.

    Args:
        model: its parameters that require gradients are optimised...
        config: optimiser kind, learning rate, weight decay, momentum.
        param_groups: ...unless explicit groups are given (``[{"params": [...], "lr": x}]``,
            e.g. discriminative rates for a fine-tuned base and its head); empty groups are
            dropped and a group without ``lr`` uses the config's.
    """
    if param_groups is not None:
        params: list[Any] = [g for g in param_groups if list(g["params"])]
        tensors = [t for g in params for t in g["params"]]
    else:
        params = tensors = [p for p in model.parameters() if p.requires_grad]
    if not params:
        raise ValueError("the model has no trainable parameters (everything is frozen)")
    lr, wd = config.resolved_lr, config.weight_decay
    # fused=True: one kernel per step for all parameters instead of a Python loop over
    # tensors; measured clearly faster for small convnets on CPU, where the step is a
    # sizeable share of the time.
    fused: dict[str, Any] = (
        {"fused": True} if all(t.dtype.is_floating_point for t in tensors) else {}
    )
    if config.optimizer == "sgd":
        return torch.optim.SGD(
            params,
            lr=lr,
            momentum=config.momentum,
            weight_decay=wd,
            nesterov=config.momentum > 0,
            **fused,
        )
    if config.optimizer == "adam":
        return torch.optim.Adam(params, lr=lr, weight_decay=wd, **fused)
    if config.optimizer == "adamw":
        return torch.optim.AdamW(params, lr=lr, weight_decay=wd or 1e-2, **fused)
    return torch.optim.RMSprop(params, lr=lr, weight_decay=wd, momentum=0.0)


def build_scheduler(opt: torch.optim.Optimizer, config: TrainConfig, steps_per_epoch: int) -> Any:
    """The LR schedule; ``per_step`` schedules step every batch, others every epoch."""
    total = config.epochs * steps_per_epoch
    s = config.schedule
    if s == "onecycle" and total < 10:
        s = "cosine"  # one-cycle needs a few steps per phase; tiny runs anneal instead
    if s == "onecycle":
        return torch.optim.lr_scheduler.OneCycleLR(
            opt, max_lr=[g["lr"] for g in opt.param_groups], total_steps=total, pct_start=0.25
        )
    if s == "cosine":
        return torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=total)
    if s == "step":
        return torch.optim.lr_scheduler.StepLR(opt, step_size=max(1, config.epochs // 3), gamma=0.1)
    if s == "plateau":
        return torch.optim.lr_scheduler.ReduceLROnPlateau(opt, factor=0.1, patience=2)
    return None


def _per_step(config: TrainConfig) -> bool:
    return config.schedule in ("onecycle", "cosine")


def class_weights(labels: torch.Tensor, num_classes: int) -> torch.Tensor:
    """Balanced weights ``n / (K * count_k)`` (classes absent from training get weight 0)."""
    counts = torch.bincount(labels, minlength=num_classes).float()
    w = len(labels) / (num_classes * counts.clamp(min=1))
    return torch.where(counts > 0, w, torch.zeros_like(w))


@dataclass
class FitResult:
    """What :func:`fit` returns: the history rows, the precision used and the final state."""

    history: list[dict[str, float]]
    precision: Precision
    state: TrainState


def fit(
    model: torch.nn.Module,
    train: Any,
    val: Any | None,
    config: TrainConfig,
    *,
    callbacks: list[Callback] | None = None,
    augment: Any = None,
    device: str | torch.device | None = None,
    resume_from: dict[str, Any] | None = None,
    param_groups: list[dict[str, Any]] | None = None,
) -> FitResult:
    """Train ``model`` on ``train`` and validate on ``val`` each epoch.

    Args:
        model: any classifier returning logits ``(B, K)``; its ``card`` (if any) gives mean/std.
        train, val: :class:`Tensors`, objects with ``images``/``labels``, or pairs.
        config: the run's :class:`TrainConfig` (epochs, batch size, optimiser, schedule...).
        callbacks: extra hooks (progress bar, checkpoint, CSV log, early stopping...).
        augment: a callable ``augment(x_uint8, generator=g) -> x`` applied to training batches.
        device: ``cpu``/``cuda``; default: CUDA when available.
        resume_from: a checkpoint dict from :func:`cnnkit.train.checkpoint.load_checkpoint`.
        param_groups: optimiser parameter groups with their own learning rates (the
            schedule scales them together); default: every parameter that requires grad.

    Returns:
        A :class:`FitResult` with the per-epoch history.

    Raises:
        TrainingDiverged: the loss became NaN/Inf (the message names the step).
    """
    keep_freed_memory()  # no page faults per step for the step's large temporaries
    with cpu_threads(config.threads):
        return _fit(
            model, train, val, config, callbacks, augment, device, resume_from, param_groups
        )


def _fit(
    model: torch.nn.Module,
    train: Any,
    val: Any | None,
    config: TrainConfig,
    callbacks: list[Callback] | None,
    augment: Any,
    device: str | torch.device | None,
    resume_from: dict[str, Any] | None,
    param_groups: list[dict[str, Any]] | None,
) -> FitResult:
    dev = torch.device(device or ("cuda" if torch.cuda.is_available() else "cpu"))
    tr = Tensors.from_any(train)
    va = Tensors.from_any(val) if val is not None and len(Tensors.from_any(val)) else None
    prec = choose_for_model(config.precision, dev, model, batch_shape(tr, config))
    model.to(dev)
    if prec.channels_last:
        model.to(memory_format=torch.channels_last)
    norm = model_normalizer(model, tr.images.shape[1], dev)
    steps = math.ceil(_usable(len(tr), config.batch_size) / config.batch_size)
    if config.max_steps_per_epoch:
        steps = min(steps, config.max_steps_per_epoch)
    opt = build_optimizer(model, config, param_groups)
    sched = build_scheduler(opt, config, steps)
    state = TrainState(model, opt, sched, config.epochs, steps)
    weight = None
    if config.class_weight == "balanced":
        weight = class_weights(tr.labels, _num_classes(model, tr)).to(dev)
    if resume_from is not None:
        _restore(state, resume_from)
    cbs = CallbackList(callbacks or [])
    train_model = distributed.wrap(model, dev)  # DDP inside a process group, else the model
    step_fn = _TrainStep(
        train_model,
        opt,
        sched if _per_step(config) else None,
        prec,
        norm,
        weight,
        config.label_smoothing,
        dev,
    )
    cbs.on_fit_start(state)
    while state.epoch < config.epochs and not state.stop:
        state.epoch += 1
        _run_epoch(state, tr, va, config, step_fn, augment, cbs, dev, norm, prec)
    cbs.on_fit_end(state)
    return FitResult(state.history, prec, state)


def _num_classes(model: torch.nn.Module, tr: Tensors) -> int:
    return int(getattr(model, "num_classes", 0) or int(tr.labels.max()) + 1)


def _restore(state: TrainState, ckpt: dict[str, Any]) -> None:
    state.model.load_state_dict(ckpt["model"])
    state.optimizer.load_state_dict(ckpt["optimizer"])
    if state.scheduler is not None and ckpt.get("scheduler") is not None:
        state.scheduler.load_state_dict(ckpt["scheduler"])
    state.epoch = int(ckpt["epoch"])
    state.step = int(ckpt["step"])
    state.history = list(ckpt["history"])
    state.extra = dict(ckpt.get("extra") or {})


class _TrainStep:
    """One optimisation step on a prepared batch; checks the loss is finite."""

    def __init__(
        self,
        model,
        opt,
        sched,
        prec: Precision,
        norm: Normalizer,
        weight,
        label_smoothing: float,
        dev: torch.device,
    ) -> None:
        self.model, self.opt, self.sched, self.prec = model, opt, sched, prec
        self.norm, self.weight, self.ls, self.dev = norm, weight, label_smoothing, dev
        self.scaler = torch.amp.GradScaler("cuda") if prec.value == "fp16" else None

    def __call__(self, x: torch.Tensor, y: torch.Tensor, where: str) -> tuple[float, int]:
        with self.prec.autocast():
            logits = self.model(x)
            loss = F.cross_entropy(logits.float(), y, weight=self.weight, label_smoothing=self.ls)
        if not distributed.all_true(bool(torch.isfinite(loss))):
            raise TrainingDiverged(
                f"loss became {loss.item()} at {where}; training stopped, the last finite "
                "checkpoint is kept. Try a lower --lr."
            )
        self.opt.zero_grad(set_to_none=True)
        if self.scaler is not None:
            self.scaler.scale(loss).backward()
            self.scaler.step(self.opt)
            self.scaler.update()
        else:
            loss.backward()
            self.opt.step()
        if self.sched is not None:
            self.sched.step()
        correct = int((logits.argmax(1) == y).sum())
        return float(loss.detach()), correct


def _run_epoch(state, tr: Tensors, va, config: TrainConfig, step_fn, augment, cbs, dev, norm, prec):
    gen = _epoch_generator(config.seed, state.epoch)
    torch.manual_seed(int(torch.randint(0, 2**62, (1,), generator=gen)))  # dropout stream
    state.model.train()
    cbs.on_epoch_start(state)
    order = torch.randperm(len(tr), generator=gen)[: _usable(len(tr), config.batch_size)]
    aug_gen = _augment_generator(gen, config.seed, state.epoch)
    t0 = time.perf_counter()
    loss_sum, correct, seen = 0.0, 0.0, 0.0
    for i in range(state.steps_per_epoch):
        # each rank takes every world-th image of the same global batch (all of it alone)
        idx = distributed.local_batch(order[i * config.batch_size : (i + 1) * config.batch_size])
        x = prepare_batch(tr.images[idx], norm, prec, dev, augment, aug_gen)
        y = tr.labels[idx].to(dev, non_blocking=True)
        loss, corr = step_fn(x, y, f"epoch {state.epoch}, step {i + 1}")
        state.step += 1
        loss_sum, correct, seen = loss_sum + loss * len(idx), correct + corr, seen + len(idx)
        state.logs = {"loss": loss_sum / seen, "accuracy": correct / seen}
        cbs.on_train_batch_end(state)
    seconds = time.perf_counter() - t0
    loss_sum, correct, seen = distributed.sum_metrics(loss_sum, correct, seen)
    row = {
        "epoch": state.epoch,
        "loss": loss_sum / seen,
        "accuracy": correct / seen,
        "val_loss": math.nan,
        "val_accuracy": math.nan,
        "lr": state.optimizer.param_groups[0]["lr"],
        "seconds": seconds,
        "images_per_second": seen / max(seconds, 1e-9),
    }
    if va is not None:
        probs = predict_proba(state.model, va.images, norm, prec, dev)
        row["val_loss"] = float(F.nll_loss(torch.log(probs.clamp_min(1e-12)), va.labels))
        row["val_accuracy"] = float((probs.argmax(1) == va.labels).float().mean())
    state.history.append(row)
    cbs.on_validation_end(state)
    if state.scheduler is not None and not _per_step(config):
        if config.schedule == "plateau":
            state.scheduler.step(row["val_loss"] if va is not None else row["loss"])
        else:
            state.scheduler.step()
    cbs.on_epoch_end(state)
    state.stop = distributed.broadcast_flag(state.stop)  # rank 0's callbacks decide


@contextlib.contextmanager
def cpu_threads(n: int | None) -> Iterator[None]:
    """Run the body with ``n`` intra-op CPU threads (None: unchanged), then restore."""
    if n is None:
        yield
        return
    before = torch.get_num_threads()
    torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def batch_shape(tr: Tensors, config: TrainConfig) -> tuple[int, ...]:
    """The shape of a training batch, for timing precision candidates."""
    return (max(1, min(config.batch_size, len(tr))), *tr.images.shape[1:])


def _usable(n: int, batch_size: int) -> int:
    """Images used per epoch: all in one process; a multiple of the world size in a group,
    so every rank gets an equal share of every batch (exact gradient averaging).

    Raises:
        ValueError: the batch size does not divide evenly over the processes.
    """
    world = distributed.rank_world()[1]
    if world == 1:
        return n
    if batch_size % world:
        raise ValueError(
            f"batch_size must be a multiple of the {world} processes. "
            f"Received: batch_size={batch_size}"
        )
    return n - n % world


def _augment_generator(gen: torch.Generator, seed: int, epoch: int) -> torch.Generator:
    """The epoch stream in one process; a distinct stream per rank in a process group."""
    rank, world = distributed.rank_world()
    return gen if world == 1 else _epoch_generator(seed + 104729 * (rank + 1), epoch)
