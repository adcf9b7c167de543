"""The training loop: one readable function for every way cnnkit trains, batches from memory.

A training run is a list of :class:`Phase` s: training from scratch is one phase; fine-tuning
is two (the new head on a frozen base, then the top blocks at low rates); the feature
strategy is one phase on cached base features; a continued run (``--resume --epochs``) adds
one. A phase decides what trains and at which rates; the loop, precision, callbacks,
checkpoints, resume and data-parallel training are the same for all of them.

Per step: gather a batch by index; for images augment it (one batched affine warp), scale
and normalise in one fused op and convert to channels_last; forward under autocast; loss;
backward; step. No per-sample Python work, no worker processes. Ctrl-C surfaces as a
``KeyboardInterrupt`` between two steps (:class:`StepInterrupt`).
"""

from __future__ import annotations

import contextlib
import copy
import math
import signal
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field, fields
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from cnnkit.allocator import keep_freed_memory
from cnnkit.errors import CnnkitError
from cnnkit.runs.inference import Normalizer, Precision, model_normalizer, prepare_batch
from cnnkit.train import distributed
from cnnkit.train.budget import auto_epochs, steps_per_epoch
from cnnkit.train.callbacks import Callback, CallbackList, TrainState
from cnnkit.train.precision import choose_for_model


class TrainingDiverged(CnnkitError):
    """The loss became NaN or infinite; training stopped at the named step."""


# --------------------------------------------------------------------------- what trains on


@dataclass
class Tensors:
    """A labelled set in memory: images, cached features or SNP rows, with their targets.

    Shape:
        images: ``(N, C, H, W)`` uint8 images (0..255, normalised and augmented by the loop),
            or float inputs used as they are (cached features ``(N, C, h, w)``, SNPs ``(N, L)``).
        labels: ``(N,)`` int64 class indices, or float targets (regression, binary); ``(N, E)``
            float targets for a model with E outputs (NaN: no record, for
            ``masked_regression``).
    """

    images: torch.Tensor
    labels: torch.Tensor

    def __post_init__(self) -> None:
        if self.images.ndim < 2 or (self.is_images and self.images.ndim != 4):
            raise ValueError(
                "images must be (N, C, H, W) uint8 or (N, ...) float inputs. "
                f"Received: {self.images.dtype} {tuple(self.images.shape)}"
            )
        if len(self.images) != len(self.labels):
            raise ValueError(
                f"images and labels differ in length: {len(self.images)} vs {len(self.labels)}"
            )

    @property
    def is_images(self) -> bool:
        return self.images.dtype == torch.uint8

    def __len__(self) -> int:
        return len(self.labels)

    @classmethod
    def from_any(cls, data: Any) -> Tensors:
        """From ``Tensors``, an object with ``images``/``labels``, or an (inputs, targets) pair."""
        if isinstance(data, cls):
            return data
        if hasattr(data, "images") and hasattr(data, "labels"):
            images, labels = data.images, data.labels
        else:
            images, labels = data
        x, y = _as_tensor(images), _as_tensor(labels)
        if x.dtype == torch.float64:
            x = x.float()
        return cls(x, y.float() if y.is_floating_point() else y.long())


def _as_tensor(a: Any) -> torch.Tensor:
    return a if isinstance(a, torch.Tensor) else torch.from_numpy(np.ascontiguousarray(a))


# --------------------------------------------------------------------------- settings, phases


@dataclass(frozen=True, kw_only=True)
class LoopSettings:
    """The loop's own knobs; :class:`cnnkit.train.TrainConfig` and the genomics settings both
    provide them (:meth:`of`).

    Attributes:
        epochs: passes over the training set (all phases together); None: sized from the
            training set (:mod:`cnnkit.train.budget`).
        lr: the learning rate (the peak of a one-cycle schedule).
        task: ``classification`` (cross-entropy), ``regression`` (MSE),
            ``masked_regression`` (MSE over the finite targets: NaN marks a missing record) or
            ``binary`` (logistic loss on one output).
        Others: as :class:`cnnkit.train.TrainConfig`.
    """

    epochs: int | None
    batch_size: int = 64
    lr: float = 1e-3
    optimizer: str = "adam"
    momentum: float = 0.9
    weight_decay: float = 0.0
    schedule: str = "onecycle"
    precision: str = "auto"
    seed: int = 0
    class_weight: str = "none"
    label_smoothing: float = 0.0
    max_steps_per_epoch: int | None = None
    threads: int | None = None
    task: str = "classification"

    @classmethod
    def of(cls, config: Any) -> LoopSettings:
        """The settings of ``config`` (a ``LoopSettings``, ``TrainConfig`` or any object with
        the same attribute names; ``lr`` from its ``resolved_lr`` where it has one)."""
        if isinstance(config, cls):
            return config
        values = {f.name: getattr(config, f.name) for f in fields(cls) if hasattr(config, f.name)}
        values["lr"] = float(getattr(config, "resolved_lr", values.get("lr", 1e-3)))
        return cls(**values)


ParamGroups = list[dict[str, Any]]


@dataclass(frozen=True)
class Phase:
    """One stretch of training with its own trainable parameters and learning rates.

    Attributes:
        name: shown in the log and recorded in the run (``train``, ``head``, ``finetune``...).
        epochs: epochs in this phase.
        setup: called with the model when the phase starts (also on resume): freezes or
            unfreezes what it needs and returns optimiser parameter groups
            (``[{"params": [...], "lr": x}]``), or None for every trainable parameter at the
            settings' rate.
        augment: whether the run's augmentation applies in this phase.
        forward: ``model`` (the whole model) or ``head`` (``model.forward_head`` on cached
            base features).
        keep_optimizer: continue the previous phase's optimiser state (a continued run), instead
            of a new optimiser.
    """

    name: str
    epochs: int
    setup: Callable[[nn.Module], ParamGroups | None] | None = None
    augment: bool = True
    forward: str = "model"
    keep_optimizer: bool = False

    def __post_init__(self) -> None:
        if isinstance(self.epochs, bool) or not isinstance(self.epochs, int) or self.epochs < 1:
            raise ValueError(f"a phase needs >= 1 epochs. Received: {self.name}={self.epochs!r}")
        if self.forward not in ("model", "head"):
            raise ValueError(f"forward must be model or head. Received: {self.forward!r}")


def phase_at(phases: Sequence[Phase], epoch: int) -> int:
    """The index of the phase that runs epoch ``epoch + 1`` (``len(phases)`` when all are done)."""
    end = 0
    for i, phase in enumerate(phases):
        end += phase.epochs
        if epoch < end:
            return i
    return len(phases)


# --------------------------------------------------------------------------- optimiser, schedule


def build_optimizer(
    model: nn.Module, settings: Any, param_groups: ParamGroups | None = None
) -> torch.optim.Optimizer:
    """The optimiser named in the settings.

    Args:
        model: its parameters that require gradients are optimised...
        settings: optimiser kind, learning rate, weight decay, momentum.
        param_groups: ...unless explicit groups are given (``[{"params": [...], "lr": x}]``,
            e.g. discriminative rates for a fine-tuned base and its head); empty groups are
            dropped and a group without ``lr`` uses the settings'.
    """
    s = LoopSettings.of(settings)
    if param_groups is not None:
        params: list[Any] = [g for g in param_groups if list(g["params"])]
        tensors = [t for g in params for t in g["params"]]
    else:
        params = tensors = [p for p in model.parameters() if p.requires_grad]
    if not params:
        raise ValueError("the model has no trainable parameters (everything is frozen)")
    # fused=True: one kernel per step for all parameters instead of a Python loop over
    # tensors; measured clearly faster for small convnets on CPU, where the step is a
    # sizeable share of the time.
    fused: dict[str, Any] = (
        {"fused": True} if all(t.dtype.is_floating_point for t in tensors) else {}
    )
    lr, wd = s.lr, s.weight_decay
    if s.optimizer == "sgd":
        nesterov = s.momentum > 0
        return torch.optim.SGD(
            params, lr=lr, momentum=s.momentum, weight_decay=wd, nesterov=nesterov, **fused
        )
    if s.optimizer == "adam":
        return torch.optim.Adam(params, lr=lr, weight_decay=wd, **fused)
    if s.optimizer == "adamw":
        return torch.optim.AdamW(params, lr=lr, weight_decay=wd or 1e-2, **fused)
    return torch.optim.RMSprop(params, lr=lr, weight_decay=wd, momentum=0.0)


def build_scheduler(opt: torch.optim.Optimizer, settings: Any, steps_per_epoch: int,
                    epochs: int | None = None) -> Any:  # fmt: skip
    """The learning-rate schedule over ``epochs`` (default: the settings') of
    ``steps_per_epoch`` steps; one-cycle and cosine step every batch, the others every epoch."""
    s = LoopSettings.of(settings)
    epochs = epochs or s.epochs or 1
    total = epochs * steps_per_epoch
    kind = s.schedule
    if kind == "onecycle" and total < 10:
        kind = "cosine"  # one-cycle needs a few steps per phase; tiny runs anneal instead
    if kind == "onecycle":
        return torch.optim.lr_scheduler.OneCycleLR(
            opt, max_lr=[g["lr"] for g in opt.param_groups], total_steps=total, pct_start=0.25
        )
    if kind == "cosine":
        return torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=total)
    if kind == "step":
        return torch.optim.lr_scheduler.StepLR(opt, step_size=max(1, epochs // 3), gamma=0.1)
    if kind == "plateau":
        return torch.optim.lr_scheduler.ReduceLROnPlateau(opt, factor=0.1, patience=2)
    return None


def per_step(settings: Any) -> bool:
    """Whether the schedule steps every batch (one-cycle, cosine) rather than every epoch."""
    return LoopSettings.of(settings).schedule in ("onecycle", "cosine")


def class_weights(labels: torch.Tensor, num_classes: int) -> torch.Tensor:
    """Balanced weights ``n / (K * count_k)`` (classes absent from training get weight 0)."""
    counts = torch.bincount(labels, minlength=num_classes).float()
    w = len(labels) / (num_classes * counts.clamp(min=1))
    return torch.where(counts > 0, w, torch.zeros_like(w))


# --------------------------------------------------------------------------- the objective


TASKS = ("classification", "regression", "masked_regression", "binary")


class Objective:
    """The loss and the accuracy of a task (one of :data:`TASKS`).

    ``masked_regression`` is the mean squared error over the finite entries of the target
    only, so targets ``(N, E)`` with NaN where a record is missing (a line not tested in an
    environment) train every output on what was observed.
    """

    def __init__(self, task: str, weight: torch.Tensor | None = None, smoothing: float = 0.0):
        if task not in TASKS:
            raise ValueError(f"task must be one of {', '.join(TASKS)}. Received: {task!r}")
        self.task, self.weight, self.smoothing = task, weight, smoothing

    def loss(self, out: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        out = out.float()
        if self.task == "classification":
            return F.cross_entropy(out, y, weight=self.weight, label_smoothing=self.smoothing)
        if out.ndim == 2 and out.shape[1] == 1 and y.ndim == 1:
            out = out.squeeze(1)  # (B, 1) -> (B,) for targets (B,)
        if self.task == "binary":
            return F.binary_cross_entropy_with_logits(out, y)
        if self.task == "masked_regression":
            return masked_mse(out, y)
        return F.mse_loss(out, y)

    def correct(self, out: torch.Tensor, y: torch.Tensor) -> float:
        if self.task == "classification":
            return float((out.argmax(1) == y).sum())
        if self.task == "binary":
            return float(((out.reshape(-1) > 0).float() == y).sum())
        return math.nan


def masked_mse(out: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Mean squared error over the finite entries of ``y`` (0 when there are none)."""
    seen = ~torch.isnan(y)
    diff = torch.where(seen, out - torch.nan_to_num(y), torch.zeros_like(out))
    return (diff * diff).sum() / seen.sum().clamp(min=1)


# --------------------------------------------------------------------------- fit


@dataclass
class FitResult:
    """What :func:`fit` returns: the history rows, the precision used and the final state."""

    history: list[dict[str, float]]
    precision: Precision
    state: TrainState
    phases: list[Phase] = field(default_factory=list)


def fit(
    model: nn.Module,
    train: Any,
    val: Any | None,
    config: Any,
    *,
    callbacks: list[Callback] | None = None,
    augment: Any = None,
    device: str | torch.device | None = None,
    resume_from: dict[str, Any] | None = None,
    param_groups: ParamGroups | None = None,
    phases: Sequence[Phase] | None = None,
    precision: Precision | None = None,
) -> FitResult:
    """Train ``model`` on ``train`` and validate on ``val`` each epoch.

    Args:
        model: returns logits ``(B, K)`` (or ``(B, 1)`` for regression); its ``card`` (if
            any) gives mean/std for images.
        train, val: :class:`Tensors`, objects with ``images``/``labels``, or pairs.
        config: a :class:`cnnkit.train.TrainConfig` or :class:`LoopSettings`.
        callbacks: hooks (progress bar, checkpoint, CSV log, early stopping...).
        augment: a callable ``augment(x_uint8, generator=g) -> x`` for training image batches.
        device: ``cpu``/``cuda``; default: CUDA when available.
        resume_from: a checkpoint dict from :func:`cnnkit.train.checkpoint.load_checkpoint`.
        param_groups: optimiser parameter groups (a one-phase run with its own rates).
        phases: the run's phases; default: one phase of ``config.epochs``.
        precision: the precision to train in, resolved once by the caller; default: chosen
            from ``config.precision`` and the hardware.

    Returns:
        A :class:`FitResult` with the per-epoch history.

    Raises:
        TrainingDiverged: the loss became NaN/Inf (the message names the step).
    """
    settings = LoopSettings.of(config)
    if phases is None:
        groups = (lambda m: param_groups) if param_groups is not None else None
        phases = [Phase("train", settings.epochs or _auto_epochs(train, settings), groups)]
    keep_freed_memory()  # no page faults per step for the step's large temporaries
    with cpu_threads(settings.threads), StepInterrupt():
        return _Fit(model, train, val, settings, list(phases), augment, device, precision).run(
            CallbackList(callbacks or []), resume_from
        )


class StepInterrupt:
    """Ctrl-C while :func:`fit` runs is held until the step ends, then raised there.

    Python raises ``KeyboardInterrupt`` wherever the main thread happens to be; inside a
    finaliser that exception is printed as "Exception ignored" and lost, and the run goes on.
    Within this context SIGINT only sets a flag, which the loop reads after every step
    (:meth:`check`); a second Ctrl-C before that raises at once. It takes over only Python's
    own handler, in the main thread: a host program's handler (or SIGINT ignored, as in a job
    a script starts in the background) is left alone. The previous handler is restored on
    exit; an interrupt the loop did not reach before the exit is raised then.
    """

    _active: StepInterrupt | None = None

    def __init__(self) -> None:
        self.requested = False
        self._previous: Any = None

    def __enter__(self) -> StepInterrupt:
        if (
            StepInterrupt._active is None
            and threading.current_thread() is threading.main_thread()
            and signal.getsignal(signal.SIGINT) is signal.default_int_handler
        ):
            self._previous = signal.signal(signal.SIGINT, self._handle)
            StepInterrupt._active = self
        return self

    def _handle(self, signum: int, frame: Any) -> None:
        if self.requested:  # the second Ctrl-C: now
            raise KeyboardInterrupt
        self.requested = True

    @classmethod
    def check(cls) -> None:
        """Raise ``KeyboardInterrupt`` if Ctrl-C was pressed since the last check."""
        active = cls._active
        if active is not None and active.requested:
            active.requested = False
            raise KeyboardInterrupt

    def __exit__(self, *exc: Any) -> None:
        if StepInterrupt._active is not self:
            return
        signal.signal(signal.SIGINT, self._previous)
        StepInterrupt._active = None
        if self.requested and exc[0] is None:
            raise KeyboardInterrupt


def _auto_epochs(train: Any, settings: LoopSettings) -> int:
    """The data-sized default length (:mod:`cnnkit.train.budget`) of ``train``."""
    n = len(Tensors.from_any(train))
    return auto_epochs(steps_per_epoch(n, settings.batch_size, settings.max_steps_per_epoch))


class _Fit:
    """The state of one :func:`fit` call: data, precision, objective, the step function."""

    def __init__(self, model, train, val, settings, phases, augment, device, precision):
        self.dev = torch.device(device or ("cuda" if torch.cuda.is_available() else "cpu"))
        self.settings, self.phases, self.augment = settings, phases, augment
        self.tr = Tensors.from_any(train)
        va = Tensors.from_any(val) if val is not None else None
        self.va = va if va is not None and len(va) else None
        self.model = model
        self.prec = precision or choose_for_model(
            settings.precision, self.dev, model, batch_shape(self.tr, settings)
        )
        model.to(self.dev)
        if self.prec.channels_last and self.tr.images.ndim == 4:
            model.to(memory_format=torch.channels_last)
        self.norm = (
            model_normalizer(model, self.tr.images.shape[1], self.dev)
            if self.tr.is_images
            else None
        )
        steps = math.ceil(_usable(len(self.tr), settings.batch_size) / settings.batch_size)
        self.steps = min(steps, settings.max_steps_per_epoch or steps)
        self.objective = Objective(settings.task, self._class_weights(), settings.label_smoothing)

    def _class_weights(self) -> torch.Tensor | None:
        if self.settings.class_weight != "balanced" or self.settings.task != "classification":
            return None
        k = int(getattr(self.model, "num_classes", 0) or int(self.tr.labels.max()) + 1)
        return class_weights(self.tr.labels, k).to(self.dev)

    def run(self, cbs: CallbackList, ckpt: dict[str, Any] | None) -> FitResult:
        total = sum(p.epochs for p in self.phases)
        state = TrainState(self.model, None, None, total, self.steps)
        if self.va is not None:
            state.validate = self._validation_metrics
        if ckpt is not None:
            _restore_progress(state, ckpt)
        cbs.on_fit_start(state)
        end = 0
        for index, phase in enumerate(self.phases):
            end += phase.epochs
            if state.epoch >= end:
                continue
            self._enter(state, index, phase, ckpt)
            state.phase_epochs = phase.epochs
            cbs.on_phase_start(state)
            while state.epoch < end and not state.stop:
                state.epoch += 1
                self._epoch(state, phase, cbs)
            cbs.on_phase_end(state)
            state.stop = False  # an early stop ends its phase; the next phase still runs
        cbs.on_fit_end(state)
        return FitResult(state.history, self.prec, state, self.phases)

    def _enter(self, state: TrainState, index: int, phase: Phase, ckpt) -> None:
        """Set up ``phase``: what trains, its optimiser and schedule (restored on resume)."""
        groups = phase.setup(self.model) if phase.setup is not None else None
        previous = state.optimizer
        state.optimizer = build_optimizer(self.model, self.settings, groups)
        if phase.keep_optimizer and previous is not None:
            state.optimizer.load_state_dict(previous.state_dict())
        state.scheduler = build_scheduler(state.optimizer, self.settings, self.steps, phase.epochs)
        state.phase = index
        saved_phase = ckpt.get("phase", 0) if ckpt is not None else None
        if saved_phase == index or (saved_phase == index - 1 and phase.keep_optimizer):
            state.optimizer.load_state_dict(ckpt["optimizer"])
        if saved_phase == index and state.scheduler is not None and ckpt.get("scheduler"):
            state.scheduler.load_state_dict(ckpt["scheduler"])
        forward = _HeadOnly(self.model) if phase.forward == "head" else self.model
        self.step = _TrainStep(
            distributed.wrap(forward, self.dev),  # DDP inside a process group, else as is
            state.optimizer,
            state.scheduler if per_step(self.settings) else None,
            self.prec,
            self.objective,
        )
        self.forward = forward

    def _epoch(self, state: TrainState, phase: Phase, cbs: CallbackList) -> None:
        s = self.settings
        gen = _epoch_generator(s.seed, state.epoch)
        torch.manual_seed(int(torch.randint(0, 2**62, (1,), generator=gen)))  # dropout stream
        state.model.train()
        cbs.on_epoch_start(state)
        order = torch.randperm(len(self.tr), generator=gen)[: _usable(len(self.tr), s.batch_size)]
        aug_gen = _augment_generator(gen, s.seed, state.epoch)
        augment = self.augment if phase.augment else None
        t0 = time.perf_counter()
        loss_sum, correct, seen = 0.0, 0.0, 0.0
        for i in range(state.steps_per_epoch):
            # each rank takes every world-th item of the same global batch (all of it alone)
            idx = distributed.local_batch(order[i * s.batch_size : (i + 1) * s.batch_size])
            x = self._batch(self.tr.images[idx], augment, aug_gen)
            y = self.tr.labels[idx].to(self.dev, non_blocking=True)
            loss, corr = self.step(x, y, f"epoch {state.epoch}, step {i + 1}")
            state.step += 1
            loss_sum, correct, seen = loss_sum + loss * len(idx), correct + corr, seen + len(idx)
            state.logs = {"loss": loss_sum / seen, "accuracy": correct / seen, "seen": seen}
            cbs.on_train_batch_end(state)
            StepInterrupt.check()
        seconds = time.perf_counter() - t0
        loss_sum, correct, seen = distributed.sum_metrics(loss_sum, correct, seen)
        row = {
            "epoch": state.epoch,
            "loss": loss_sum / seen,
            "accuracy": correct / seen,
            "val_loss": math.nan,
            "val_accuracy": math.nan,
            "lr": state.optimizer.param_groups[-1]["lr"],
            "seconds": seconds,
            "images_per_second": seen / max(seconds, 1e-9),
        }
        if self.va is not None:
            row["val_loss"], row["val_accuracy"] = self.validate()
        state.history.append(row)
        cbs.on_validation_end(state)
        self._epoch_schedule(state, row)
        cbs.on_epoch_end(state)
        StepInterrupt.check()
        state.stop = distributed.broadcast_flag(state.stop)  # rank 0's callbacks decide

    def _epoch_schedule(self, state: TrainState, row: dict[str, float]) -> None:
        if state.scheduler is None or per_step(self.settings):
            return
        if self.settings.schedule == "plateau":
            state.scheduler.step(row["val_loss"] if self.va is not None else row["loss"])
        else:
            state.scheduler.step()

    def _batch(self, x: torch.Tensor, augment: Any = None, gen: Any = None) -> torch.Tensor:
        if self.norm is not None:  # uint8 images
            return prepare_batch(x, self.norm, self.prec, self.dev, augment, gen)
        x = x.to(self.dev, non_blocking=True)
        if self.prec.channels_last and x.ndim == 4:
            x = x.contiguous(memory_format=torch.channels_last)
        return x

    def sweep(self, start: float, end: float, steps: int) -> tuple[list[float], list[float]]:
        """The range test's steps (see :func:`range_test`)."""
        s = self.settings
        steps = max(10, steps)
        state = TrainState(self.model, None, None, 1, steps)
        self._enter(state, 0, self.phases[0], None)
        self.step.sched = None  # the sweep sets the rate itself
        scales = [g["lr"] for g in state.optimizer.param_groups]  # relative rates of the groups
        top = max(scales)
        gen = torch.Generator().manual_seed(s.seed)
        augment = self.augment if self.phases[0].augment else None
        lrs: list[float] = []
        losses: list[float] = []
        self.model.train()
        for i in range(steps):
            lr = start * (end / start) ** (i / max(steps - 1, 1))
            for group, scale in zip(state.optimizer.param_groups, scales, strict=True):
                group["lr"] = lr * scale / top
            idx = torch.randint(0, len(self.tr), (min(s.batch_size, len(self.tr)),), generator=gen)
            x = self._batch(self.tr.images[idx], augment, gen)
            y = self.tr.labels[idx].to(self.dev)
            try:
                loss, _ = self.step(x, y, f"range test step {i + 1}")
            except TrainingDiverged:  # past the useful range
                break
            lrs.append(lr)
            losses.append(loss)
            if i > 5 and loss > 4 * min(losses):
                break
        return lrs, losses

    def _validation_metrics(self) -> dict[str, float]:
        val_loss, val_accuracy = self.validate()
        return {"val_loss": val_loss, "val_accuracy": val_accuracy}

    @torch.inference_mode()
    def validate(self, batch_size: int = 512) -> tuple[float, float]:
        """``(val_loss, val_accuracy)`` of the current model on the validation set."""
        assert self.va is not None  # noqa: S101 - only called with a validation set
        was_training = self.model.training
        self.model.eval()
        outs = []
        try:
            for i in range(0, len(self.va), batch_size):
                x = self._batch(self.va.images[i : i + batch_size])
                with self.prec.autocast():
                    outs.append(self.forward(x).float().cpu())
        finally:
            self.model.train(was_training)
        out, y = torch.cat(outs), self.va.labels
        loss = float(Objective(self.settings.task).loss(out, y))
        return loss, self.objective.correct(out, y) / len(y)


def range_test(
    model: nn.Module,
    train: Any,
    config: Any,
    *,
    phase: Phase | None = None,
    augment: Any = None,
    device: str | torch.device | None = None,
    precision: Precision | None = None,
    start: float = 1e-7,
    end: float = 10.0,
    steps: int = 100,
) -> tuple[list[float], list[float]]:
    """A learning-rate range test on a copy of ``model``: ``steps`` optimiser steps on random
    batches of ``train`` at rates growing exponentially from ``start`` to ``end``, stopped
    when the loss diverges. The model and the random streams are left as they were.

    Returns:
        The rate of each step and the loss after it (see :mod:`cnnkit.train.lr_find`).
    """
    settings = LoopSettings.of(config)
    with torch.random.fork_rng(devices=[]), cpu_threads(settings.threads):
        torch.manual_seed(settings.seed)
        trial = copy.deepcopy(model)
        run = _Fit(trial, train, None, settings, [phase or Phase("train", 1)], augment, device,
                   precision)  # fmt: skip
        return run.sweep(start, end, steps)


class _HeadOnly(nn.Module):
    """``model.forward_head`` as a module, so DDP and the step treat it as any model."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model

    def forward(self, features: torch.Tensor) -> torch.Tensor:  # (B, C, h, w) -> (B, K)
        return self.model.forward_head(features)  # type: ignore[operator]


def _restore_progress(state: TrainState, ckpt: dict[str, Any]) -> None:
    """Weights, epoch, step, history and callback state of a checkpoint (the optimiser and
    schedule are restored when their phase starts)."""
    state.model.load_state_dict(ckpt["model"])
    state.epoch = int(ckpt["epoch"])
    state.step = int(ckpt["step"])
    state.history = list(ckpt["history"])
    state.extra = dict(ckpt.get("extra") or {})


class _TrainStep:
    """One optimisation step on a prepared batch; checks the loss is finite."""

    def __init__(self, forward, opt, sched, prec: Precision, objective: Objective) -> None:
        self.forward, self.opt, self.sched, self.prec = forward, opt, sched, prec
        self.objective = objective
        self.scaler = torch.amp.GradScaler("cuda") if prec.value == "fp16" else None

    def __call__(self, x: torch.Tensor, y: torch.Tensor, where: str) -> tuple[float, float]:
        with self.prec.autocast():
            out = self.forward(x)
            loss = self.objective.loss(out, y)
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
        return float(loss.detach()), self.objective.correct(out.detach(), y)


# --------------------------------------------------------------------------- helpers


def _epoch_generator(seed: int, epoch: int) -> torch.Generator:
    # One independent stream per (seed, epoch): resuming at an epoch boundary replays it exactly.
    return torch.Generator().manual_seed((seed * 1_000_003 + epoch * 7919) % (2**63))


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


def batch_shape(tr: Tensors, config: Any) -> tuple[int, ...]:
    """The shape of a training batch, for timing precision candidates."""
    batch_size = LoopSettings.of(config).batch_size
    return (max(1, min(batch_size, len(tr))), *tr.images.shape[1:])


def _usable(n: int, batch_size: int) -> int:
    """Items used per epoch: all in one process; a multiple of the world size in a group,
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


__all__ = [
    "FitResult",
    "LoopSettings",
    "Normalizer",
    "Objective",
    "Phase",
    "StepInterrupt",
    "TASKS",
    "Tensors",
    "TrainingDiverged",
    "batch_shape",
    "build_optimizer",
    "build_scheduler",
    "class_weights",
    "cpu_threads",
    "fit",
    "masked_mse",
    "per_step",
    "phase_at",
    "range_test",
]
