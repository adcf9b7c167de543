"""Long work is never silent: where stderr is not a terminal (Rscript, knitr, nohup, CI logs)
training writes plain lines with images/s and the time left, within and after each epoch."""

from __future__ import annotations

import time

from cnnkit.train.callbacks import ProgressBar, TrainState


def _epoch(bar: ProgressBar, state: TrainState, epoch: int, steps: int) -> None:
    state.epoch = epoch
    bar.on_epoch_start(state)
    for _ in range(steps):
        state.step += 1
        state.logs = {"loss": 0.5, "accuracy": 0.75, "seen": 32.0 * (state.step % steps or steps)}
        time.sleep(0.002)
        bar.on_train_batch_end(state)
    state.history.append({"loss": 0.5, "accuracy": 0.75, "val_loss": 0.6, "val_accuracy": 0.7,
                          "lr": 1e-3, "seconds": 0.01, "images_per_second": 3200.0})  # fmt: skip
    bar.on_epoch_end(state)


def test_plain_lines_within_and_after_each_epoch_when_not_a_terminal(capsys):
    state = TrainState(model=None, optimizer=None, scheduler=None, epochs=3, steps_per_epoch=4)
    bar = ProgressBar(interval=0.0)  # a line at every step (30 s by default)
    bar.on_fit_start(state)
    _epoch(bar, state, 1, 4)
    _epoch(bar, state, 2, 4)
    lines = capsys.readouterr().err.splitlines()
    steps = [ln for ln in lines if " step " in ln]
    assert len(steps) == 8 and "\r" not in "".join(lines)
    assert steps[0].startswith("epoch 1/3 step 1/4: loss 0.5000, ")
    assert " img/s, about " in steps[0] and steps[0].endswith(" left")
    ends = [ln for ln in lines if " step " not in ln]
    assert ends[0].startswith("epoch 1/3: loss 0.5000 acc 0.7500 val_loss 0.6000 val_acc 0.7000")
    assert "3200 img/s, about " in ends[0] and ends[0].endswith(" left")
    assert ends[1].startswith("epoch 2/3: ") and len(ends) == 2


def test_lines_within_an_epoch_are_spaced_by_the_interval(capsys):
    state = TrainState(model=None, optimizer=None, scheduler=None, epochs=1, steps_per_epoch=50)
    bar = ProgressBar(interval=3600.0)
    bar.on_fit_start(state)
    _epoch(bar, state, 1, 50)
    lines = capsys.readouterr().err.splitlines()
    assert len(lines) == 1 and lines[0].startswith("epoch 1/1: ") and "left" not in lines[0]
