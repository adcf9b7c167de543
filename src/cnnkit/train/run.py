"""A training run as a folder: data -> split -> model -> phases -> fit -> weights, metrics.

``train_run(config, out)`` writes the run folder described in DESIGN.md (``config.json``,
``split.csv``, ``model.safetensors``, ``checkpoint/``, ``history.csv``, ``metrics.json``,
``predictions.csv``, ``summary.txt``, ``augment.png``); ``resume_run(out)`` continues an
interrupted run, or trains a finished one for more epochs. Every strategy (from scratch,
``features``, ``frozen``, ``finetune``) is a list of phases run by the one loop,
:func:`cnnkit.train.fit`. Rendering ``report.html`` is the report stage's job.
"""

from __future__ import annotations

import csv
import io
import platform
import sys
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
from cnnkit.data.preview import preview_grid
from cnnkit.errors import CnnkitError, RunFolderError
from cnnkit.fileio import atomic_write_bytes, atomic_write_json, atomic_write_text, read_json
from cnnkit.models.pretrained import check_pretrained
from cnnkit.models.summaries import summary
from cnnkit.models.transfer import describe_text
from cnnkit.runs import layout
from cnnkit.runs.config import read_run_config
from cnnkit.runs.history import read_history
from cnnkit.runs.inference import Precision, model_normalizer, predict_proba
from cnnkit.runs.layout import (
    RunDir,
    adopt_run_dir,
    check_run_dir,
    create_run_dir,
    discard_if_unstarted,
)
from cnnkit.runs.split import read_split, read_split_rows, write_split
from cnnkit.runs.weights import save_weights
from cnnkit.train import data_source, distributed, transfer
from cnnkit.train.budget import Budget, plan_budget, unwatched_share
from cnnkit.train.callbacks import Callback, Checkpoint, CSVLogger, EarlyStopping, ProgressBar
from cnnkit.train.checkpoint import load_checkpoint
from cnnkit.train.config import TrainConfig, changed_keys
from cnnkit.train.loop import FitResult, Phase, Tensors, batch_shape, cpu_threads, fit
from cnnkit.train.lr_find import LRFinding, find_lr
from cnnkit.train.metrics import classification_metrics
from cnnkit.train.precision import choose_for_model, cpu_model

CHECKPOINT = Path(layout.CHECKPOINT)


@dataclass
class RunResult:
    """The outcome of :func:`train_run`: where it is, its metrics and how long it took."""

    run_dir: Path
    metrics: dict[str, Any]
    history: list[dict[str, float]]
    seconds: float


class RunInterrupted(KeyboardInterrupt):
    """Ctrl-C during training: the run folder keeps its last checkpoint and can resume."""

    def __init__(self, run_dir: Path, epoch: int, epochs: int) -> None:
        self.run_dir, self.epoch, self.epochs = run_dir, epoch, epochs
        super().__init__(
            f"interrupted at epoch {epoch} of {epochs}; continue with resume_run({str(run_dir)!r})"
        )

    def cli_message(self) -> str:
        return (
            f"interrupted at epoch {self.epoch} of {self.epochs}; continue with: "
            f"cnnkit train --resume {self.run_dir}"
        )


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


def train_run(
    config: TrainConfig,
    out: str | Path,
    *,
    overwrite: bool = False,
    progress: bool = True,
    device: str | None = None,
    data: data_source.RunData | None = None,
    split: tuple[np.ndarray, np.ndarray] | None = None,
    quiet: bool = False,
) -> RunResult:
    """Train ``config`` into the run folder ``out`` and evaluate on its validation split.

    Args:
        config: the run's settings (``strategy`` set: transfer learning from ``pretrained``).
        out: the run folder (refused if it holds a run, unless ``overwrite``).
        overwrite: replace a run in ``out`` (only cnnkit's own files there are removed).
        progress: show progress on stderr.
        device: ``cpu``/``cuda``; default CUDA when available.
        data, split: already loaded data and train/validation indices (k-fold uses these).
        quiet: no progress at all, not even plain epoch lines (a learning curve reports
            each run in one line of its own).

    Raises:
        RunInterrupted: Ctrl-C; the folder keeps its last checkpoint for :func:`resume_run`.
    """
    if config.devices > 1 and distributed.env_world_size() == 1:
        check_run_dir(out, overwrite=overwrite)
        job = {"config": config.to_dict(), "out": str(out), "overwrite": overwrite}
        return _parallel(job, config.devices, Path(out))
    with distributed.process_group() as group_device:
        return _train_new(config, out, overwrite, None if quiet else progress,
                          device or _name(group_device), data, split)  # fmt: skip


def _name(device: torch.device | None) -> str | None:
    return None if device is None else str(device)


def _train_new(config, out, overwrite, progress, device, data, split) -> RunResult:
    main = distributed.is_main()
    if main:
        check_run_dir(out, overwrite=overwrite)  # refuse before any decoding
    if config.pretrained:
        check_pretrained(config.model, config.pretrained)  # a missing weight file, as early
    if data is None:
        data = _load_data_once(config)
        if main and data.choice is not None:
            _log(data.choice.describe())
    if main and progress is not None and config.model == data_source.AUTO_MODEL:
        _log(f"model {data.model} (auto: {data_source.auto_model_reason(data)})")
    config = data_source.with_model(config, data)
    model = _build_model(config, data, pretrained=True)  # a bad weight file: no run folder
    train_idx, val_idx = split if split is not None else data_source.split(data.arrays, config)
    data_source.check_split(data.arrays, train_idx, val_idx, config)
    budget = plan_budget(len(train_idx), config.batch_size, config.epochs, config.early_stopping,
                         config.max_steps_per_epoch, len(val_idx) > 0)  # fmt: skip
    if main and config.epochs is None and progress is not None:
        _log(budget.why)
    run = create_run_dir(out, overwrite=overwrite) if main else RunDir(Path(out))
    distributed.run_dir_ready(run.path)
    trainer = _Trainer(_budgeted(config, budget), run.path, data, train_idx, val_idx, device,
                       progress, requested=config, budget=budget)  # fmt: skip
    try:
        return trainer.train(model, None, trainer.plan, new=True)
    except Exception:
        if main and not (run.path / CHECKPOINT).is_file():
            discard_if_unstarted(
                run, keep=("augment.png", layout.LR_FIND)
            )  # nothing trained: leave nothing
        raise


def resume_run(
    out: str | Path,
    *,
    overrides: dict[str, Any] | None = None,
    progress: bool = True,
    device: str | None = None,
    quiet: bool = False,
) -> RunResult:
    """Continue the run in ``out`` from its last checkpoint, with the saved split.

    A larger ``epochs`` in ``overrides`` trains a run further (as a second Keras ``fit``
    would): after the planned epochs, a ``continued`` phase keeps the optimiser's state and
    runs its own schedule; ``history.csv`` holds both parts.

    ``quiet`` says nothing on stderr (as :func:`train_run`'s).

    Raises:
        RunFolderError: no run there, or ``overrides`` change what the run is (listed).
    """
    run_dir = adopt_run_dir(out).path
    if layout.is_run_dir(run_dir) and not layout.is_started(run_dir):
        raise RunFolderError(
            f"{run_dir} stopped before it wrote its {layout.CONFIG}: there is nothing to resume; "
            "train into the same folder again (it is reused as it is, no overwrite needed)"
        )
    saved = read_run_config(run_dir)
    config, continued = _resume_config(run_dir, saved, overrides or {})
    if config.devices > 1 and distributed.env_world_size() == 1:
        job = {"resume": str(run_dir), "overrides": overrides or {}}
        return _parallel(job, config.devices, run_dir)
    with distributed.process_group() as group_device:
        return _resume(run_dir, saved, config, continued, None if quiet else progress,
                       device or _name(group_device))  # fmt: skip


def _resume(run_dir: Path, saved: dict[str, Any], config: TrainConfig, continued: list[int],
            progress, device) -> RunResult:  # fmt: skip
    read_split_rows(run_dir / layout.SPLIT)  # a damaged split is named before anything else
    ckpt_path = run_dir / CHECKPOINT
    ckpt = load_checkpoint(ckpt_path) if ckpt_path.is_file() else None
    done = int(ckpt["epoch"]) if ckpt is not None else 0
    if done >= _n(config):
        raise RunFolderError(
            f"{run_dir} has trained all its {config.epochs} epochs; pass a larger epochs "
            "to train it further"
        )
    if progress is not None:
        _log(f"resuming {run_dir} at epoch {done + 1} of {config.epochs}")
    data = _load_data_once(config)
    train_idx, val_idx = read_split(run_dir / layout.SPLIT, data.arrays)
    model = _build_model(config, data, pretrained=ckpt is None)  # a checkpoint has the weights
    trainer = _Trainer(config, run_dir, data, train_idx, val_idx, device, progress,
                       requested=saved_request(saved, config), lr=saved_lr(saved))  # fmt: skip
    planned = config.replace(epochs=_n(config) - sum(continued))
    return trainer.train(model, ckpt, lambda lr: _continue(_plan(planned, lr), continued))


def find_run_lr(config: TrainConfig, device: str | None = None) -> LRFinding:
    """The range test a ``train_run`` of ``config`` would make, without a run folder: the same
    data, split, model, first phase (a transfer head on a frozen base) and augmentation."""
    data = data_source.load_run_data(config)
    config = data_source.with_model(config, data)
    model = _build_model(config, data, pretrained=True)
    train_idx, val_idx = data_source.split(data.arrays, config)
    budget = plan_budget(len(train_idx), config.batch_size, config.epochs, config.early_stopping,
                         config.max_steps_per_epoch, len(val_idx) > 0)  # fmt: skip
    trainer = _Trainer(_budgeted(config, budget), Path("."), data, train_idx, val_idx, device,
                       False)  # fmt: skip
    phase = trainer.plan(trainer.lr)[0]
    tr = Tensors.from_any(data.arrays.subset(train_idx))
    if config.strategy == "features":
        tr, _, _ = trainer._features(model, tr, None)
    with cpu_threads(config.threads):
        prec = choose_for_model(config.precision, trainer.dev, model, batch_shape(tr, config))
    augment = data_source.build_augment(config) if phase.augment else None
    return find_lr(model, tr, trainer.config, phase=phase, augment=augment, device=trainer.dev,
                   precision=prec, usual=trainer.lr)  # fmt: skip


def _parallel(job: dict[str, Any], devices: int, run_dir: Path) -> RunResult:
    """Run ``job`` on ``devices`` local processes and read the result from the run folder."""
    t0 = time.perf_counter()
    code = distributed.launch(job, devices)
    if code != 0:
        raise CnnkitError(
            f"data-parallel training on {devices} processes failed (exit code {code}); "
            "the messages above say why"
        )
    metrics = (
        read_json(run_dir / layout.METRICS, "metrics")
        if (run_dir / layout.METRICS).is_file()
        else {}
    )
    return RunResult(run_dir, metrics, read_history(run_dir / layout.HISTORY),
                     time.perf_counter() - t0)  # fmt: skip


def saved_settings(saved: dict[str, Any]) -> dict[str, Any]:
    """The :class:`TrainConfig` fields of a saved config.json: the learning rate and precision
    as the user asked for them, the epochs and patience as the run planned them."""
    fields = set(TrainConfig.__dataclass_fields__)
    base = {k: v for k, v in saved.items() if k in fields}
    base["lr"] = saved.get("requested_lr", base.get("lr"))
    base["precision"] = saved.get("requested_precision", "auto")
    return base


def saved_lr(saved: dict[str, Any]) -> float | None:
    """The learning rate a saved run trained with (found or given); None if not recorded."""
    lr = saved.get("lr")
    return float(lr) if isinstance(lr, (int, float)) and not isinstance(lr, bool) else None


def saved_request(saved: dict[str, Any], config: TrainConfig) -> TrainConfig:
    """``config`` with the epochs and patience the user originally asked for (None: sized
    from the data), so a resumed run's config.json keeps saying so."""
    return config.replace(
        epochs=saved.get("requested_epochs", config.epochs),
        early_stopping=saved.get("requested_early_stopping", config.early_stopping),
    )


def _n(config: TrainConfig) -> int:
    """The epochs of a config whose length is settled (a saved or budgeted one)."""
    if config.epochs is None:
        raise ValueError("the run's epochs are not settled yet (plan_budget fills them in)")
    return config.epochs


def _budgeted(config: TrainConfig, budget: Budget) -> TrainConfig:
    """``config`` with the epochs and patience of ``budget`` filled in."""
    return config.replace(epochs=budget.epochs, early_stopping=budget.patience)


def _resume_config(
    run_dir: Path, saved: dict[str, Any], overrides: dict[str, Any]
) -> tuple[TrainConfig, list[int]]:
    """The run's config with ``overrides``, and its continued phases' epochs (old and new)."""
    base = saved_settings(saved)
    stopping = saved.get("training", {}).get("stopping") or {}
    if stopping.get("stopped_epoch"):  # early stopping ended the plan there
        base["epochs"] = int(stopping.get("epochs_run") or base["epochs"])
    config = TrainConfig.from_dict({**base, **overrides})
    old = TrainConfig.from_dict(base)
    diff = [k for k in changed_keys(old.to_dict(), config.to_dict()) if k != "epochs"]
    if diff:
        raise RunFolderError(f"cannot resume {run_dir} with a changed config: {', '.join(diff)}")
    continued = list(saved.get("training", {}).get("continued", []))
    if _n(config) < _n(old):
        raise RunFolderError(
            f"cannot resume {run_dir} with fewer epochs ({config.epochs}) than it plans "
            f"({old.epochs}); epochs can only grow"
        )
    if _n(config) > _n(old):
        continued.append(_n(config) - _n(old))
    return config, continued


def _plan(config: TrainConfig, lr: float) -> list[Phase]:
    """The phases of a strategy: one for training from scratch, transfer's own otherwise."""
    if config.strategy is None:
        return [Phase("train", _n(config))]
    return transfer.transfer_phases(config, lr)


def _continue(phases: list[Phase], continued: list[int]) -> list[Phase]:
    """``phases`` followed by one ``continued`` phase per extension, like the last phase."""
    last = phases[-1]
    more = [
        Phase("continued", n, last.setup, last.augment, last.forward, keep_optimizer=True)
        for n in continued
    ]
    return phases + more


def _load_data_once(config: TrainConfig) -> data_source.RunData:
    """Rank 0 decodes (and fills the cache) first; the other ranks then read the cache."""
    data = data_source.load_run_data(config) if distributed.is_main() else None
    distributed.barrier()
    return data or data_source.load_run_data(config)


def _build_model(config: TrainConfig, data: data_source.RunData, pretrained: bool) -> Any:
    """The run's model; transfer runs get a new head on the pretrained (or resumed) base."""
    model = data_source.build_model(config, data.arrays, pretrained=pretrained)
    if config.strategy is not None:
        transfer.new_head(model)
    return model


def _log(message: str) -> None:
    sys.stderr.write(message + "\n")
    sys.stderr.flush()


class _Trainer:
    """One run folder's training: precision, callbacks, the fit, and what is saved after."""

    def __init__(self, config, run_dir, data, train_idx, val_idx, device, progress, *,
                 requested: TrainConfig | None = None, budget: Budget | None = None,
                 lr: float | None = None) -> None:  # fmt: skip
        self.config, self.run_dir, self.data = config, Path(run_dir), data
        self.train_idx, self.val_idx, self.progress = train_idx, val_idx, progress
        self.requested, self.budget = requested or config, budget
        self.dev = torch.device(device or ("cuda" if torch.cuda.is_available() else "cpu"))
        self.main = distributed.is_main()
        self.lr = lr if lr is not None else (
            transfer.head_lr(config) if config.strategy else config.resolved_lr
        )  # fmt: skip
        self.finding: LRFinding | None = None

    def plan(self, lr: float) -> list[Phase]:
        """A new run's phases at head (or only) learning rate ``lr``."""
        return _plan(self.config, lr)

    def train(self, model, ckpt, plan, new: bool = False) -> RunResult:
        """Train ``model`` (from ``ckpt`` if given) through the phases ``plan(lr)`` returns."""
        t0 = time.perf_counter()
        arrays, phases = self.data.arrays, plan(self.lr)
        tr = Tensors.from_any(arrays.subset(self.train_idx))
        va = Tensors.from_any(arrays.subset(self.val_idx)) if len(self.val_idx) else None
        with cpu_threads(self.config.threads):  # time candidates with the threads fit will use
            prec = choose_for_model(self.config.precision, self.dev, model,
                                    batch_shape(tr, self.config))  # fmt: skip
        augment = data_source.build_augment(self.config) if any(p.augment for p in phases) else None
        feature_info = None
        if self.config.strategy == "features":
            tr, va, feature_info = self._features(model, tr, va)
        if ckpt is None and self.config.lr_auto:  # nothing trained yet: find the rate
            phases = plan(self._find_lr(model, tr, phases[0], augment, prec))
        cfg = self.config.replace(lr=self.lr)
        saved = self._write_start(model, prec, phases, new, augment)
        if feature_info is not None:
            saved["transfer_features"] = feature_info
        status = _Status()
        cbs = self._callbacks(status) if self.main else []
        try:
            result = fit(model, tr, va, cfg, callbacks=cbs, augment=augment, device=self.dev,
                         resume_from=ckpt, phases=phases, precision=prec)  # fmt: skip
        except KeyboardInterrupt:
            raise RunInterrupted(self.run_dir, status.epoch + 1, cfg.epochs) from None
        if not self.main:  # only rank 0 writes the run folder
            return RunResult(self.run_dir, {}, result.history, time.perf_counter() - t0)
        return self._finish(model, result, saved, t0)

    def _find_lr(self, model, tr: Tensors, phase: Phase, augment, prec) -> float:
        """The range test on the first phase; its rate becomes the run's (head) rate."""
        finding = find_lr(model, tr, self.config, phase=phase,
                          augment=augment if phase.augment else None, device=self.dev,
                          precision=prec, usual=self.lr)  # fmt: skip
        self.finding, self.lr = finding, finding.suggestion
        if self.main:
            atomic_write_json(self.run_dir / layout.LR_FIND, finding.to_dict())
            if self.progress is not None:
                _log(finding.describe())
        return self.lr

    def _write_start(self, model, prec, phases, new, augment) -> dict[str, Any]:
        """config.json (and split.csv for a new run) before training: a kill from here on
        leaves a run that resumes."""
        cfg = resolved_config(self.config, self.data, model, prec.to_dict())
        cfg.update(lr=self.lr, requested_lr=self.requested.lr,
                   requested_epochs=self.requested.epochs,
                   requested_early_stopping=self.requested.early_stopping)  # fmt: skip
        cfg["distributed"] = distributed.describe()
        cfg["training"] = {
            "phases": [{"name": p.name, "epochs": p.epochs} for p in phases],
            "continued": [p.epochs for p in phases if p.name == "continued"],
        }
        if self.budget is not None:
            cfg["training"]["budget"] = self.budget.to_dict()
        if self.finding is not None:
            cfg["training"]["lr_find"] = {
                k: v for k, v in self.finding.to_dict().items() if k not in ("lrs", "losses")
            }
        if self.main:
            atomic_write_json(self.run_dir / layout.CONFIG, cfg)
            if new:
                write_split(self.run_dir / layout.SPLIT, self.data.arrays, self.train_idx,
                            self.val_idx)  # fmt: skip
            _write_augment_preview(self.run_dir, self.data.arrays, self.train_idx, augment,
                                   self.config.seed)  # fmt: skip
        return cfg

    def _features(self, model, tr: Tensors, va: Tensors | None):
        """The frozen base's features of every image (cached on disk) in place of images."""
        transfer.freeze_base(model)
        feats, hit, path = transfer.cached_features(model, self.data.arrays.images, self.dev)
        info = {"hit": hit, "path": str(path), "shape": list(feats.shape[1:])}
        if not self.config.augment.is_identity:
            info["augment_ignored"] = "features are computed once, without augmentation"
        f_tr = Tensors(feats[torch.as_tensor(self.train_idx)], tr.labels)
        f_va = Tensors(feats[torch.as_tensor(self.val_idx)], va.labels) if va is not None else None
        return f_tr, f_va, info

    def _callbacks(self, status: _Status) -> list[Callback]:
        cbs: list[Callback] = [
            status,
            CSVLogger(self.run_dir / layout.HISTORY),
            Checkpoint(
                self.run_dir / CHECKPOINT,
                every=self.config.checkpoint_every,
                meta={"model": self.config.model, "seed": self.config.seed},
            ),
        ]
        if self.progress is not None:  # None: quiet
            cbs.insert(1, ProgressBar(enabled=None if self.progress else False))
        if self.config.early_stopping:
            share = unwatched_share(self.requested.epochs, self.requested.early_stopping)
            cbs.insert(0, EarlyStopping(self.config.early_stopping, start_share=share))
        if self.config.strategy:
            cbs.append(transfer.FrozenCheck(self.config.bn))
        return cbs

    def _finish(self, model, result: FitResult, cfg: dict[str, Any], t0: float) -> RunResult:
        meta = {"model": self.config.model, "cnnkit": __version__}
        if self.config.strategy:
            meta["strategy"] = str(self.config.strategy)
        save_weights(self.run_dir / layout.WEIGHTS, model.state_dict(), meta)
        metrics = self._evaluate(model)
        seconds = time.perf_counter() - t0
        cfg["training"]["stopping"] = _stopping(result)
        if self.config.strategy:
            cfg["transfer"] = self._transfer_info(model, result, cfg.pop("transfer_features", None))
        cfg["timing"] = {
            "total_seconds": seconds,
            "train_seconds": sum(r["seconds"] for r in result.history),
        }
        atomic_write_json(self.run_dir / layout.CONFIG, cfg)
        _write_summary(self.run_dir, model, self.data.arrays.image_shape, cfg.get("transfer"))
        return RunResult(self.run_dir, metrics, result.history, seconds)

    def _transfer_info(self, model, result: FitResult, features) -> dict[str, Any]:
        info = dict(result.state.extra.get("transfer") or {})
        info.update(
            strategy=self.config.strategy,
            pretrained=self.config.pretrained,
            weights=getattr(getattr(model, "pretrained_info", None), "to_dict", dict)(),
        )
        if len(result.phases) > 1 and self.config.strategy == "finetune":
            head, tune = result.phases[0], result.phases[1]
            groups = transfer.param_groups(model, self.lr)
            info["phases"] = {
                "head_epochs": head.epochs,
                "finetune_epochs": tune.epochs,
                "base_lr": groups[0]["lr"],
                "head_lr": groups[1]["lr"],
            }
        if features is not None:
            info["feature_cache"] = features
        return info

    def _evaluate(self, model) -> dict[str, Any]:
        """metrics.json and predictions.csv from the whole model, in fp32 as ``evaluate``."""
        if not len(self.val_idx):
            return {}
        va = self.data.arrays.subset(self.val_idx)
        norm = model_normalizer(model, va.images.shape[1], self.dev)
        prec = Precision("fp32", False, self.dev.type, "evaluation")
        probs = predict_proba(model, torch.from_numpy(va.images), norm, prec, self.dev)
        metrics = classification_metrics(va.labels, probs.numpy(), self.data.arrays.class_names)
        atomic_write_json(self.run_dir / layout.METRICS, metrics)
        write_predictions(self.run_dir / layout.PREDICTIONS, va, probs)
        return metrics


class _Status(Callback):
    """The last finished epoch, for the interrupt message."""

    def __init__(self) -> None:
        self.epoch = 0

    def on_fit_start(self, state) -> None:
        self.epoch = state.epoch

    def on_epoch_end(self, state) -> None:
        self.epoch = state.epoch


def _stopping(result: FitResult) -> dict[str, Any]:
    """Why training ended and which weights were kept (config.json ``training.stopping``)."""
    extra = result.state.extra
    stopped = int(extra.get("stopped_epoch", 0) or 0)
    return {
        "epochs_run": len(result.history),
        "stopped_epoch": stopped,
        "reason": "early stopping on val_loss" if stopped else "all epochs run",
        "best_epoch": int(extra.get("best_epoch", 0) or 0),
        "restored_epoch": int(extra.get("restored_epoch", 0) or 0),
        "watched_from_epoch": int(extra.get("watched_from", 0) or 0),
    }


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


def _write_summary(
    run_dir: Path, model: torch.nn.Module, shape: tuple[int, int, int], transfer_info=None
) -> None:
    try:
        text = str(summary(model.cpu().float(), input_shape=shape))
    except (ValueError, RuntimeError) as e:
        text = f"(summary unavailable: {e})"
    if transfer_info:
        text += "\n" + describe_text(transfer_info)
    atomic_write_text(run_dir / layout.SUMMARY, text + "\n")


def _write_augment_preview(run_dir: Path, arrays, train_idx, augment, seed: int) -> None:
    if augment is None:
        return
    sample = arrays.subset(train_idx[: min(4, len(train_idx))])
    atomic_write_bytes(
        run_dir / "augment.png", preview_grid(sample.images, augment, n=16, seed=seed)
    )
