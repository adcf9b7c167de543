import math
import signal

import pytest
import torch
from torch import nn

from cnnkit.train import Callback, EarlyStopping, TrainConfig, TrainingDiverged, fit
from cnnkit.train.callbacks import Checkpoint
from cnnkit.train.checkpoint import load_checkpoint
from cnnkit.train.loop import StepInterrupt


def tiny_net(k=3, seed=0):
    torch.manual_seed(seed)
    return nn.Sequential(
        nn.Conv2d(1, 8, 3, padding=1),
        nn.ReLU(),
        nn.AdaptiveAvgPool2d(4),
        nn.Flatten(),
        nn.Linear(128, k),
    )


def toy_data(n=96, k=3, seed=0):
    g = torch.Generator().manual_seed(seed)
    labels = torch.arange(n) % k
    images = torch.randint(0, 60, (n, 1, 12, 12), generator=g, dtype=torch.uint8)
    for c in range(k):  # each class lights a different band: learnable, not trivial
        images[labels == c, :, c * 4 : (c + 1) * 4, :] += 150
    return images, labels


def cfg(**kw):
    base = dict(data="toy", epochs=3, batch_size=32, precision="fp32", schedule="none", seed=0)
    base.update(kw)
    return TrainConfig(**base)


def test_overfits_one_batch():
    x, y = toy_data(16)
    model = tiny_net()
    res = fit(model, (x, y), None, cfg(epochs=60, batch_size=16, lr=3e-2))
    assert res.history[-1]["accuracy"] == 1.0
    assert res.history[-1]["loss"] < 0.1 * res.history[0]["loss"]


class Recorder(Callback):
    def __init__(self):
        self.calls = []

    def __getattribute__(self, name):
        if name.startswith("on_"):
            self.calls.append(name)
        return object.__getattribute__(self, name)


def test_callback_order():
    x, y = toy_data(64)
    rec = Recorder()
    fit(tiny_net(), (x, y), (x[:16], y[:16]), cfg(epochs=2), callbacks=[rec])
    per_epoch = [
        "on_epoch_start",
        "on_train_batch_end",
        "on_train_batch_end",
        "on_validation_end",
        "on_epoch_end",
    ]
    assert rec.calls == [
        "on_fit_start",
        "on_phase_start",
        *per_epoch,
        *per_epoch,
        "on_phase_end",
        "on_fit_end",
    ]


def test_history_has_every_column_and_validation():
    x, y = toy_data()
    res = fit(tiny_net(), (x, y), (x[:30], y[:30]), cfg(epochs=2, schedule="onecycle"))
    row = res.history[-1]
    assert set(row) == {
        "epoch",
        "loss",
        "accuracy",
        "val_loss",
        "val_accuracy",
        "lr",
        "seconds",
        "images_per_second",
    }
    assert not math.isnan(row["val_loss"]) and row["images_per_second"] > 0


def test_early_stopping_restores_best():
    x, y = toy_data()
    # validation labels are shuffled noise, so val_loss gets worse as the model fits train
    val = (x[:48], y[:48][torch.randperm(48, generator=torch.Generator().manual_seed(1))])
    snapshots = {}

    class Snap(Callback):
        def on_epoch_end(self, state):
            snapshots[state.epoch] = {k: v.clone() for k, v in state.model.state_dict().items()}

    model = tiny_net()
    res = fit(model, (x, y), val, cfg(epochs=12, lr=3e-2), callbacks=[EarlyStopping(2), Snap()])
    best = res.state.extra["best_epoch"]
    assert len(res.history) < 12  # stopped early
    losses = [h["val_loss"] for h in res.history]
    assert best == 1 + losses.index(min(losses))
    for k, v in model.state_dict().items():
        assert torch.equal(v, snapshots[best][k]), k


def _noise_validation(x, y):
    """Validation labels that are shuffled noise: val_loss worsens as the model fits train."""
    return x[:48], y[:48][torch.randperm(48, generator=torch.Generator().manual_seed(1))]


@pytest.mark.parametrize(
    ("start", "share", "first_watched"), [(0, 0.0, 1), (4, 0.0, 5), (0, 0.5, 7), (8, 0.5, 9)]
)
def test_early_stopping_ignores_the_epochs_before_it_starts_watching(start, share, first_watched):
    """Keras' test_EarlyStopping_with_start_from_epoch: no epoch before ``start_from_epoch``
    (0-based there, so epochs 1..start here) counts, neither as the best nor as a wait;
    ``start_share`` counts a share of the phase's 12 epochs instead (the larger wins)."""
    x, y = toy_data()
    es = EarlyStopping(2, start_from_epoch=start, start_share=share)
    res = fit(tiny_net(), (x, y), _noise_validation(x, y), cfg(epochs=12, lr=3e-2),
              callbacks=[es])  # fmt: skip
    extra = res.state.extra
    assert extra["watched_from"] == first_watched
    watched = [h["val_loss"] for h in res.history[first_watched - 1 :]]
    assert extra["best_epoch"] == first_watched + watched.index(min(watched))
    assert len(res.history) == min(12, extra["best_epoch"] + 2)  # patience 2 after the best


def test_nan_loss_stops_with_step_named():
    x, y = toy_data(32)
    model = tiny_net()
    with torch.no_grad():
        model[0].weight.fill_(float("nan"))
    with pytest.raises(TrainingDiverged, match="epoch 1, step 1"):
        fit(model, (x, y), None, cfg())


@pytest.mark.parametrize("schedule", ["onecycle", "plateau"])
def test_resume_reproduces_uninterrupted_run(tmp_path, schedule):
    x, y = toy_data()
    val = (x[:24], y[:24])
    c = cfg(epochs=4, schedule=schedule, optimizer="adam")
    full = tiny_net()
    fit(full, (x, y), val, c)

    part = tiny_net()
    ck = Checkpoint(tmp_path / "last.pt")

    class StopAt2(Callback):
        def on_epoch_end(self, state):
            state.stop = state.epoch == 2

    fit(part, (x, y), val, c, callbacks=[StopAt2(), ck])
    resumed = tiny_net(seed=99)  # different init: everything must come from the checkpoint
    res = fit(resumed, (x, y), val, c, resume_from=load_checkpoint(tmp_path / "last.pt"))
    assert [h["epoch"] for h in res.history] == [1, 2, 3, 4]
    for k, v in full.state_dict().items():
        assert torch.equal(v, resumed.state_dict()[k]), k


def test_bf16_path_trains():
    x, y = toy_data()
    res = fit(tiny_net(), (x, y), None, cfg(epochs=8, precision="bf16", lr=1e-2))
    assert res.precision.value == "bf16"
    assert res.history[-1]["loss"] < res.history[0]["loss"]


def test_class_weight_balanced_changes_loss():
    from cnnkit.train.loop import class_weights

    w = class_weights(torch.tensor([0, 0, 0, 1]), 3)
    assert torch.allclose(w, torch.tensor([4 / 9, 4 / 3, 0.0]))


def test_threads_apply_during_fit_and_are_restored():
    seen = []

    class Threads(Callback):
        def on_epoch_end(self, state):
            seen.append(torch.get_num_threads())

    before = torch.get_num_threads()
    want = 2 if before == 1 else 1
    model = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(16, 2))
    x = torch.randint(0, 255, (8, 1, 4, 4), dtype=torch.uint8)
    cfg = TrainConfig(data="toy", epochs=2, batch_size=4, precision="fp32", threads=want)
    fit(model, (x, torch.arange(8) % 2), None, cfg, callbacks=[Threads()], device="cpu")
    assert seen == [want, want] and torch.get_num_threads() == before
    with pytest.raises(ValueError, match="threads must be a positive int"):
        TrainConfig(data="toy", threads=0)


# --------------------------------------------------------------------------- non-image inputs


def rows_settings(**kw):
    from cnnkit.train.loop import LoopSettings

    base = dict(epochs=3, batch_size=16, lr=1e-2, schedule="none", precision="fp32")
    base.update(kw)
    return LoopSettings(**{"task": "regression", **base})


def test_masked_regression_is_the_mean_over_observed_targets():
    from cnnkit.train.loop import Objective

    out = torch.tensor([[1.0, 2.0], [3.0, 4.0]])
    y = torch.tensor([[0.0, float("nan")], [1.0, 1.0]])
    assert float(Objective("masked_regression").loss(out, y)) == pytest.approx((1 + 4 + 9) / 3)
    assert math.isnan(float(Objective("regression").loss(out, y)))


def test_targets_of_one_column_are_compared_row_by_row():
    from cnnkit.train.loop import Objective

    out, y = torch.tensor([[1.0], [2.0], [4.0]]), torch.tensor([[1.0], [2.0], [3.0]])
    for task in ("regression", "masked_regression"):  # (B, 1) vs (B, 1): no broadcast to (B, B)
        assert float(Objective(task).loss(out, y)) == pytest.approx(1 / 3)


def test_fit_learns_several_outputs_from_targets_with_missing_records():
    g = torch.Generator().manual_seed(0)
    x = torch.randn(96, 10, generator=g)  # (N, L) rows, not images
    y = x @ torch.randn(10, 2, generator=g)
    y[::2, 1] = float("nan")  # half the rows have no record of output 2
    torch.manual_seed(0)
    model = nn.Linear(10, 2)
    with pytest.raises(TrainingDiverged):  # plain MSE sees NaN
        fit(model, (x, y), None, rows_settings(), device="cpu")
    res = fit(model, (x, y), None, rows_settings(epochs=150, task="masked_regression"))
    assert all(math.isfinite(h["loss"]) for h in res.history)
    pred = model(x).detach()
    for e in range(2):
        seen = ~torch.isnan(y[:, e])
        assert torch.corrcoef(torch.stack([pred[seen, e], y[seen, e]]))[0, 1] > 0.95


def _worsening_fit(stopping, epochs=4):
    """y = x on the validation rows, y = -x on the training rows, a model that starts at
    y = x: every epoch of training makes the validation loss worse."""
    x = torch.linspace(-1, 1, 32)[:, None]
    model = nn.Linear(1, 1)
    with torch.no_grad():
        model.weight.fill_(1.0)
        model.bias.zero_()
    settings = rows_settings(epochs=epochs, lr=0.1, batch_size=8)
    res = fit(model, (x, -x[:, 0]), (x, x[:, 0]), settings, callbacks=[stopping], device="cpu")
    return model, res


def test_early_stopping_baseline_from_start_keeps_a_network_that_never_beats_its_start():
    model, res = _worsening_fit(EarlyStopping(2, baseline_from_start=True, verbose=0))
    assert (model.weight.item(), model.bias.item()) == (1.0, 0.0)  # exactly as it started
    extra = res.state.extra
    assert (extra["best_epoch"], extra["stopped_epoch"], extra["best_value"]) == (0, 2, 0.0)
    assert len(res.history) == 2
    # without it the best *trained* epoch is kept, which is worse than the start
    model, res = _worsening_fit(EarlyStopping(2, verbose=0))
    assert res.state.extra["best_epoch"] == 1 and model.weight.item() < 1.0


def test_early_stopping_verbose_0_is_silent(capsys):
    _worsening_fit(EarlyStopping(1, baseline_from_start=True, verbose=0))
    assert capsys.readouterr().err == ""
    _worsening_fit(EarlyStopping(1, baseline_from_start=True))
    err = capsys.readouterr().err
    assert "early stopping: val_loss did not improve for 1 epochs" in err
    assert "restored the weights of epoch 0" in err


def test_early_stopping_baseline_from_start_needs_a_validation_metric():
    with pytest.raises(ValueError, match=r"monitor must be a validation metric.*'loss'"):
        EarlyStopping(3, monitor="loss", baseline_from_start=True)


def test_schedule_none_keeps_the_learning_rate_constant():
    x = torch.randn(40, 5, generator=torch.Generator().manual_seed(0))
    res = fit(nn.Linear(5, 1), (x, x.sum(1)), None, rows_settings(epochs=4, lr=3e-3))
    assert [h["lr"] for h in res.history] == [3e-3] * 4


class CtrlC(Callback):
    """Presses Ctrl-C (a real SIGINT to this process) after step ``at``, ``times`` times, and
    records the steps the loop finished and whether the callback itself ran to its end."""

    def __init__(self, at: int, times: int = 1):
        self.at, self.times, self.steps, self.returned = at, times, [], False

    def on_train_batch_end(self, state):
        self.steps.append(state.step)
        if state.step == self.at:
            for _ in range(self.times):
                signal.raise_signal(signal.SIGINT)
            self.returned = True


def test_ctrl_c_surfaces_after_the_step_and_the_handler_is_restored(sigint_as_in_a_terminal):
    x, y = toy_data(64)
    press = CtrlC(at=3)
    with pytest.raises(KeyboardInterrupt):
        fit(tiny_net(), (x, y), None, cfg(epochs=5), callbacks=[press])
    assert press.steps == [1, 2, 3]  # the step it was pressed in finished; no other began
    assert press.returned  # held until the step's callbacks were done, not raised inside them
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler


def test_a_second_ctrl_c_raises_at_once(sigint_as_in_a_terminal):
    x, y = toy_data(64)
    press = CtrlC(at=2, times=2)
    with pytest.raises(KeyboardInterrupt):
        fit(tiny_net(), (x, y), None, cfg(epochs=5), callbacks=[press])
    assert press.steps == [1, 2] and not press.returned
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler


def test_a_host_programs_sigint_handler_is_left_alone():
    x, y = toy_data(64)
    seen = []
    previous = signal.signal(signal.SIGINT, lambda signum, frame: seen.append(signum))
    try:
        res = fit(tiny_net(), (x, y), None, cfg(epochs=2), callbacks=[CtrlC(at=2)])
        assert len(res.history) == 2 and seen == [signal.SIGINT]  # its handler ran, fit went on
    finally:
        signal.signal(signal.SIGINT, previous)


def test_an_interrupt_in_the_last_callbacks_is_raised_when_fit_ends(sigint_as_in_a_terminal):
    class AtTheEnd(Callback):
        returned = False

        def on_fit_end(self, state):
            signal.raise_signal(signal.SIGINT)
            self.returned = True

    x, y = toy_data(32)
    end = AtTheEnd()
    with pytest.raises(KeyboardInterrupt):
        fit(tiny_net(), (x, y), None, cfg(epochs=1), callbacks=[end])
    assert end.returned and StepInterrupt._active is None
