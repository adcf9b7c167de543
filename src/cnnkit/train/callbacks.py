"""Callbacks: plain objects with named hooks, each given the explicit :class:`TrainState`.

Hooks, in the order the loop calls them: ``on_fit_start``; per phase ``on_phase_start``,
then per epoch ``on_epoch_start``, ``on_train_batch_end`` (per step), ``on_validation_end``,
``on_epoch_end``, and ``on_phase_end``; finally ``on_fit_end``. A callback ends the current
phase by setting ``state.stop = True`` (a run of one phase then ends).
"""

from __future__ import annotations

import copy
import math
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from tqdm.auto import tqdm

from cnnkit.progress import duration
from cnnkit.runs.history import write_history
from cnnkit.train.checkpoint import save_checkpoint


@dataclass
class TrainState:
    """What the loop knows, shared with every callback.

    Attributes:
        model, optimizer, scheduler: the objects being trained (optimiser and schedule are the
            current phase's).
        epochs: total epochs planned; ``epoch`` is the current one (1-based once started).
        phase: index of the current phase; ``phase_epochs`` its planned epochs.
        steps_per_epoch: optimiser steps in one epoch; ``step`` counts all steps so far.
        history: one dict per finished epoch (``HISTORY_FIELDS``).
        logs: the current epoch's running numbers (``loss``, ``accuracy``, ...).
        stop: set by a callback to end training after the current epoch.
        extra: anything a callback wants to keep in the checkpoint (must be tensors/plain).
        validate: the current model's validation metrics (``val_loss``, ``val_accuracy``),
            computed when called; None without a validation set.
    """

    model: torch.nn.Module
    optimizer: Any
    scheduler: Any
    epochs: int
    steps_per_epoch: int
    epoch: int = 0
    phase: int = 0
    phase_epochs: int = 0
    step: int = 0
    history: list[dict[str, float]] = field(default_factory=list)
    logs: dict[str, float] = field(default_factory=dict)
    stop: bool = False
    extra: dict[str, Any] = field(default_factory=dict)
    validate: Callable[[], dict[str, float]] | None = None


class Callback:
    """Base class: override the hooks you need."""

    def on_fit_start(self, state: TrainState) -> None: ...
    def on_phase_start(self, state: TrainState) -> None: ...
    def on_epoch_start(self, state: TrainState) -> None: ...
    def on_train_batch_end(self, state: TrainState) -> None: ...
    def on_validation_end(self, state: TrainState) -> None: ...
    def on_epoch_end(self, state: TrainState) -> None: ...
    def on_phase_end(self, state: TrainState) -> None: ...
    def on_fit_end(self, state: TrainState) -> None: ...


class CallbackList(Callback):
    """Calls each hook on every callback, in order."""

    def __init__(self, callbacks: list[Callback]) -> None:
        self.callbacks = list(callbacks)

    def _call(self, hook: str, state: TrainState) -> None:
        for cb in self.callbacks:
            getattr(cb, hook)(state)

    def on_fit_start(self, state: TrainState) -> None:
        self._call("on_fit_start", state)

    def on_phase_start(self, state: TrainState) -> None:
        self._call("on_phase_start", state)

    def on_phase_end(self, state: TrainState) -> None:
        self._call("on_phase_end", state)

    def on_epoch_start(self, state: TrainState) -> None:
        self._call("on_epoch_start", state)

    def on_train_batch_end(self, state: TrainState) -> None:
        self._call("on_train_batch_end", state)

    def on_validation_end(self, state: TrainState) -> None:
        self._call("on_validation_end", state)

    def on_epoch_end(self, state: TrainState) -> None:
        self._call("on_epoch_end", state)

    def on_fit_end(self, state: TrainState) -> None:
        self._call("on_fit_end", state)


class ProgressBar(Callback):
    """Progress on stderr: a tqdm bar per epoch on a terminal; plain lines elsewhere.

    Every epoch ends with a summary line (loss, accuracy, validation, rate, time left). When
    stderr is not a terminal (Rscript, knitr, nohup, CI logs) there is no bar, so a line is
    written at least every ``interval`` seconds within an epoch as well: long work is never
    silent.

    Args:
        enabled: True/False forces the bar on/off; None: on where stderr is a terminal.
        interval: seconds between plain progress lines when there is no bar.
    """

    def __init__(self, enabled: bool | None = None, interval: float = 30.0) -> None:
        self.enabled = enabled
        self.interval = interval
        self._bar: tqdm | None = None
        self._t0 = self._epoch_t0 = self._last = 0.0
        self._first_epoch = 0

    def _use_bar(self) -> bool:
        return sys.stderr.isatty() if self.enabled is None else self.enabled

    def on_fit_start(self, state: TrainState) -> None:
        self._t0 = time.monotonic()
        self._first_epoch = state.epoch

    def on_epoch_start(self, state: TrainState) -> None:
        self._epoch_t0 = self._last = time.monotonic()
        if self._use_bar():
            self._bar = tqdm(
                total=state.steps_per_epoch,
                desc=f"epoch {state.epoch}/{state.epochs}",
                file=sys.stderr,
                leave=False,
                unit="step",
            )

    def on_train_batch_end(self, state: TrainState) -> None:
        if self._bar is not None:
            self._bar.update(1)
            if state.step % 10 == 0:
                self._bar.set_postfix(
                    loss=f"{state.logs.get('loss', math.nan):.4f}",
                    acc=f"{state.logs.get('accuracy', math.nan):.3f}",
                )
            return
        now = time.monotonic()
        if self.enabled is False or now - self._last < self.interval:
            return
        self._last = now
        done = state.step - (state.epoch - 1) * state.steps_per_epoch
        per_step = (now - self._epoch_t0) / max(done, 1)
        left = per_step * (state.steps_per_epoch - done)
        left += per_step * state.steps_per_epoch * (state.epochs - state.epoch)
        rate = state.logs.get("seen", 0.0) / max(now - self._epoch_t0, 1e-9)
        _write(
            f"epoch {state.epoch}/{state.epochs} step {done}/{state.steps_per_epoch}: "
            f"loss {state.logs.get('loss', math.nan):.4f}, {rate:.0f} img/s, "
            f"about {duration(left)} left"
        )

    def on_epoch_end(self, state: TrainState) -> None:
        if self._bar is not None:
            self._bar.close()
            self._bar = None
        h = state.history[-1]
        val = (
            f" val_loss {h['val_loss']:.4f} val_acc {h['val_accuracy']:.4f}"
            if not math.isnan(h.get("val_loss", math.nan))
            else ""
        )
        acc = "" if math.isnan(h.get("accuracy", math.nan)) else f" acc {h['accuracy']:.4f}"
        epochs_done = state.epoch - self._first_epoch
        left = (time.monotonic() - self._t0) / max(epochs_done, 1) * (state.epochs - state.epoch)
        eta = f", about {duration(left)} left" if state.epoch < state.epochs else ""
        _write(
            f"epoch {state.epoch}/{state.epochs}: loss {h['loss']:.4f}{acc}{val} "
            f"lr {h['lr']:.2e} {h['seconds']:.1f}s {h['images_per_second']:.0f} img/s{eta}"
        )


def _write(line: str) -> None:
    sys.stderr.write(line + "\n")
    sys.stderr.flush()


class CSVLogger(Callback):
    """Writes ``history.csv`` (rewritten atomically each epoch, so it always parses)."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)

    def on_epoch_end(self, state: TrainState) -> None:
        write_history(self.path, state.history)


class EarlyStopping(Callback):
    """Ends a phase when ``monitor`` has not improved for ``patience`` epochs; restores the
    phase's best weights at its end (Keras' ``restore_best_weights``).

    Each phase is watched on its own (a fine-tuning phase starts from the head phase's
    result, as a second Keras ``fit`` would). What happened is kept in ``state.extra``:
    ``best_epoch``, ``stopped_epoch`` (0: ran to the end) and ``restored_epoch``.

    Args:
        patience: epochs without improvement before stopping.
        monitor: a history key; lower is better for ``*loss``, higher otherwise.
        restore_best: load the best epoch's weights at the end of the phase.
        min_delta: an improvement smaller than this does not count.
        baseline_from_start: the weights a phase starts with are a candidate too: the
            validation set is scored before the phase's first epoch, training must beat that
            (Keras' ``baseline``, measured instead of given), and a phase that never beats it
            ends with the weights it started with (``best_epoch`` is then the epoch before the
            phase, 0 for the first). ``monitor`` must then be a validation metric (``val_*``).
        verbose: 0: silent; 1: a line on stderr when stopping and when restoring.
        start_from_epoch: epochs of the phase that are not watched at all (Keras'
            ``start_from_epoch``): a warm-up in which no improvement is expected, e.g. while
            a one-cycle schedule climbs to its peak rate; the best weights are looked for
            only after it.
        start_share: the same as a share of each phase's planned epochs (the larger of the
            two counts); cnnkit's default budget watches only the second half of a phase.
    """

    def __init__(
        self,
        patience: int,
        monitor: str = "val_loss",
        restore_best: bool = True,
        min_delta: float = 0.0,
        *,
        baseline_from_start: bool = False,
        verbose: int = 1,
        start_from_epoch: int = 0,
        start_share: float = 0.0,
    ) -> None:
        if baseline_from_start and not monitor.startswith("val_"):
            raise ValueError(
                "baseline_from_start scores the validation set, so monitor must be a "
                f"validation metric (val_loss, val_accuracy). Received: monitor={monitor!r}"
            )
        self.patience = patience
        self.monitor = monitor
        self.restore_best = restore_best
        self.min_delta = min_delta
        self.baseline_from_start = baseline_from_start
        self.verbose = verbose
        self.start_from_epoch = start_from_epoch
        self.start_share = start_share
        self.mode = "min" if monitor.endswith("loss") else "max"

    def _better(self, a: float, b: float) -> bool:
        return a < b - self.min_delta if self.mode == "min" else a > b + self.min_delta

    def _say(self, line: str) -> None:
        if self.verbose:
            sys.stderr.write(line + "\n")

    def on_phase_start(self, state: TrainState) -> None:
        if state.extra.get("es_phase") == state.phase:
            return  # resumed inside this phase: keep its best so far
        worst = math.inf if self.mode == "min" else -math.inf
        state.extra.update(es_phase=state.phase, best_value=worst, best_epoch=0, wait=0)
        unwatched = max(self.start_from_epoch, int(self.start_share * state.phase_epochs))
        state.extra.update(stopped_epoch=0, restored_epoch=0)
        state.extra.update(watched_from=state.epoch + unwatched + 1)
        state.extra.pop("best_state", None)
        if self.baseline_from_start:
            self._score_start(state)

    def _score_start(self, state: TrainState) -> None:
        """The starting weights as the phase's best so far (``baseline_from_start``)."""
        value = state.validate()[self.monitor] if state.validate is not None else math.nan
        if not math.isnan(value):
            state.extra.update(best_value=value, best_epoch=state.epoch)
            state.extra["best_state"] = copy.deepcopy(state.model.state_dict())

    def on_epoch_end(self, state: TrainState) -> None:
        value = state.history[-1].get(self.monitor, math.nan)
        if math.isnan(value) or state.epoch < state.extra.get("watched_from", 0):
            return
        if self._better(value, state.extra["best_value"]):
            state.extra.update(best_value=value, best_epoch=state.epoch, wait=0)
            state.extra["best_state"] = copy.deepcopy(state.model.state_dict())
            return
        state.extra["wait"] += 1
        if state.extra["wait"] >= self.patience:
            state.stop = True
            state.extra["stopped_epoch"] = state.epoch
            self._say(
                f"early stopping: {self.monitor} did not improve for {self.patience} epochs "
                f"(best {state.extra['best_value']:.4f} at epoch {state.extra['best_epoch']})"
            )

    def on_phase_end(self, state: TrainState) -> None:
        best = state.extra.get("best_state")
        if self.restore_best and best is not None and state.extra["best_epoch"] != state.epoch:
            state.model.load_state_dict(best)
            state.extra["restored_epoch"] = state.extra["best_epoch"]
            self._say(f"restored the weights of epoch {state.extra['best_epoch']}")


class Checkpoint(Callback):
    """Saves a resumable checkpoint atomically every ``every`` epochs (and at the last one).

    The checkpoint holds model, optimiser and scheduler state, the epoch, history and the
    callbacks' ``state.extra``; the epoch's RNG streams are derived from (seed, epoch), so
    resuming from it reproduces the uninterrupted run exactly (fp32, same thread count).
    """

    def __init__(
        self, path: str | Path, every: int = 1, meta: dict[str, Any] | None = None
    ) -> None:
        self.path = Path(path)
        self.every = every
        self.meta = meta or {}

    def on_epoch_end(self, state: TrainState) -> None:
        if state.epoch % self.every and state.epoch != state.epochs and not state.stop:
            return
        save_checkpoint(self.path, checkpoint_state(state, self.meta))


def checkpoint_state(state: TrainState, meta: dict[str, Any]) -> dict[str, Any]:
    """The resumable content of ``state`` (tensors and plain containers only)."""
    sched = state.scheduler.state_dict() if state.scheduler is not None else None
    return {
        "format": "cnnkit-checkpoint-1",
        "epoch": state.epoch,
        "phase": state.phase,
        "step": state.step,
        "model": state.model.state_dict(),
        "optimizer": state.optimizer.state_dict(),
        "scheduler": sched,
        "history": state.history,
        "extra": state.extra,
        "meta": meta,
    }
