"""Learning curves (cnnkit.train.learning_curves): one split, growing subsets, resume."""

import csv
import json

import numpy as np
import pytest

from cnnkit.train import TrainConfig, learning_curve, resume_learning_curve
from cnnkit.train import learning_curves as lc_module
from cnnkit.train.learning_curves import CurveInterrupted, check_fractions, plan

FRACTIONS = (0.25, 0.5, 1.0)


def _folder(root, per_class=10, size=12):
    """Two classes a small net tells apart (dark and light squares, with noise)."""
    from PIL import Image

    rng = np.random.default_rng(0)
    for c, value in (("dark", 50), ("light", 200)):
        (root / c).mkdir(parents=True, exist_ok=True)
        for i in range(per_class):
            pixels = np.clip(value + rng.normal(0, 30, (size, size)), 0, 255).astype(np.uint8)
            Image.fromarray(pixels).save(root / c / f"{i:02d}.png")
    return root


def _config(data, **kw):
    settings = dict(data=str(data), model="lenet5", epochs=1, batch_size=4, image_size=(12, 12),
                    max_steps_per_epoch=1)  # fmt: skip
    return TrainConfig(**{**settings, **kw})


def _rows(path):
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


def _subset(rows, subset):
    return sorted(r["path"] for r in rows if r["subset"] == subset)


@pytest.fixture(scope="module")
def curve(tmp_path_factory):
    root = tmp_path_factory.mktemp("lc")
    data = _folder(root / "data")  # 20 images: 16 train (8 a class), 4 validation
    return learning_curve(_config(data), root / "out", fractions=FRACTIONS, repeats=2,
                          progress=False)  # fmt: skip


def test_the_curve_writes_its_files_with_every_point(curve):
    out = curve.out
    rows = _rows(out / "learning_curve.csv")
    assert list(rows[0]) == ["fraction", "n_train", "repeat", "seed", "val_accuracy",
                             "val_loss", "seconds", "run"]  # fmt: skip
    assert [(float(r["fraction"]), int(r["repeat"])) for r in rows] == [
        (f, r) for f in FRACTIONS for r in (1, 2)
    ]
    assert [int(r["n_train"]) for r in rows] == [4, 4, 8, 8, 16, 16]
    assert len({r["seed"] for r in rows}) == 6  # every run its own seed
    summary = json.loads((out / "learning_curve.json").read_text())
    assert summary["status"] == "complete" and len(summary["points"]) == 6
    assert [p["multiple"] for p in summary["predictions"]] == [1, 2, 4]
    assert [p["n_train"] for p in summary["predictions"]] == [16, 32, 64]
    for p in summary["predictions"]:
        assert p["ci"][0] <= p["accuracy"] + 1e-9 and p["accuracy"] <= p["ci"][1] + 1e-9
    assert summary["answer"].startswith("with 2x / 4x the training images (32 / 64)")
    assert curve.answer == summary["answer"]


def test_every_point_validates_on_the_same_images(curve):
    out = curve.out
    split = _rows(out / "split.csv")
    val, train = _subset(split, "validation"), set(_subset(split, "train"))
    assert len(val) == 4
    subsets = {}
    for r in _rows(out / "learning_curve.csv"):
        point = _rows(out / r["run"] / "split.csv")
        assert _subset(point, "validation") == val
        assert set(_subset(point, "train")) <= train
        assert len(_subset(point, "train")) == int(r["n_train"])
        preds = _rows(out / r["run"] / "predictions.csv")
        assert sorted(p["path"] for p in preds) == val
        subsets[(r["fraction"], r["repeat"])] = _subset(point, "train")
    assert subsets[("0.25", "1")] != subsets[("0.25", "2")]  # repeats: their own subsets


def test_the_plan_is_the_same_on_every_call_and_stratified(curve):
    from cnnkit.data import load_folder

    arrays = load_folder(curve.summary["data"], image_size=(12, 12), color_mode="grayscale")
    idx = np.r_[0:8, 10:18]  # 8 of each class
    a, b = plan(arrays, idx, FRACTIONS, 2, 0), plan(arrays, idx, FRACTIONS, 2, 0)
    assert all((p.indices == q.indices).all() for p, q in zip(a, b, strict=True))
    for p in a:
        counts = np.bincount(arrays.labels[p.indices], minlength=2)
        assert counts[0] == counts[1]  # both classes in proportion


def test_an_interrupted_curve_resumes_keeping_its_finished_points(tmp_path, monkeypatch):
    data = _folder(tmp_path / "data")
    out = tmp_path / "out"
    real = lc_module.train_run
    calls, stop = [], [3]

    def stop_at_third(*args, **kwargs):
        calls.append(args[1])
        if len(calls) == stop[0]:
            raise KeyboardInterrupt  # Ctrl-C as the third point starts
        return real(*args, **kwargs)

    monkeypatch.setattr(lc_module, "train_run", stop_at_third)
    with pytest.raises(CurveInterrupted, match="2 of 6 points finished") as e:
        learning_curve(_config(data), out, fractions=FRACTIONS, repeats=2, progress=False)
    assert "cnnkit learning-curve --resume" in e.value.cli_message()
    assert len(_rows(out / "learning_curve.csv")) == 2
    kept = {p: (out / "points" / p / "model.safetensors").stat().st_mtime_ns
            for p in ("f0.25-r1", "f0.25-r2")}  # fmt: skip
    with pytest.raises(FileExistsError, match="already holds a learning curve"):
        learning_curve(_config(data), out, fractions=FRACTIONS, repeats=2, progress=False)

    calls.clear()
    stop[0] = 0  # no more interrupts
    result = resume_learning_curve(out, progress=False)
    assert [c.name for c in calls] == ["f0.5-r1", "f0.5-r2", "f1-r1", "f1-r2"]
    for p, mtime in kept.items():
        assert (out / "points" / p / "model.safetensors").stat().st_mtime_ns == mtime
    assert len(_rows(out / "learning_curve.csv")) == 6
    assert result.summary["status"] == "complete"


def test_a_point_stopped_mid_training_continues_from_its_checkpoint(tmp_path, monkeypatch):
    from cnnkit.train import run as run_module
    from cnnkit.train.callbacks import Callback

    class CtrlC(Callback):
        def on_epoch_start(self, state):
            if state.epoch == 2:
                raise KeyboardInterrupt

    real_fit = run_module.fit
    interrupt = [True]

    def fit_stopping_in_epoch_2(*args, callbacks=(), **kwargs):
        extra = [CtrlC()] if interrupt[0] else []
        return real_fit(*args, callbacks=[*callbacks, *extra], **kwargs)

    monkeypatch.setattr(run_module, "fit", fit_stopping_in_epoch_2)
    data, out = _folder(tmp_path / "data"), tmp_path / "out"
    with pytest.raises(CurveInterrupted, match="0 of 3 points finished"):
        learning_curve(_config(data, epochs=2), out, fractions=FRACTIONS, repeats=1,
                       progress=False)  # fmt: skip
    point = out / "points" / "f0.25-r1"
    assert (point / "checkpoint" / "last.pt").is_file() and len(_rows(point / "history.csv")) == 1

    interrupt[0] = False
    resumed, trained = [], []
    real_resume, real_train = lc_module.resume_run, lc_module.train_run
    monkeypatch.setattr(
        lc_module, "resume_run", lambda d, **k: resumed.append(d) or real_resume(d, **k)
    )
    monkeypatch.setattr(
        lc_module, "train_run", lambda *a, **k: trained.append(a[1].name) or real_train(*a, **k)
    )
    result = resume_learning_curve(out, progress=False)
    assert resumed == [point] and trained == ["f0.5-r1", "f1-r1"]
    assert len(_rows(point / "history.csv")) == 2  # epoch 1 kept, epoch 2 trained
    assert result.summary["status"] == "complete"


def test_a_point_killed_after_its_last_epoch_is_trained_again(tmp_path, monkeypatch):
    """Its checkpoint has every epoch but no metrics: resume_run refuses, so it retrains."""
    data = _folder(tmp_path / "data")
    out = tmp_path / "out"
    learning_curve(_config(data), out, fractions=FRACTIONS, repeats=1, progress=False)
    (out / "points" / "f1-r1" / "metrics.json").unlink()
    trained = []
    real_train = lc_module.train_run
    monkeypatch.setattr(
        lc_module, "train_run", lambda *a, **k: trained.append(a[1].name) or real_train(*a, **k)
    )
    resume_learning_curve(out, progress=False)
    assert trained == ["f1-r1"]
    assert (out / "points" / "f1-r1" / "metrics.json").is_file()


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"fractions": (0.5, 1.0)}, "three or more distinct numbers"),
        ({"fractions": (0.0, 0.5, 1.0)}, r"in \(0, 1\]"),
        ({"fractions": (0.1, 0.5, 1.0)}, "class 'dark' has 8 training images: the smallest"),
        ({"repeats": 0}, "repeats must be a positive int"),
    ],
)
def test_bad_plans_are_refused_before_training(tmp_path, kwargs, match):
    data = _folder(tmp_path / "data")
    with pytest.raises(ValueError, match=match):
        learning_curve(_config(data), tmp_path / "out", progress=False, **kwargs)
    assert not (tmp_path / "out").exists()


def test_k_fold_and_several_processes_are_refused(tmp_path):
    data = _folder(tmp_path / "data")
    with pytest.raises(ValueError, match="k-fold is not supported"):
        learning_curve(_config(data, folds=3), tmp_path / "out", progress=False)
    with pytest.raises(ValueError, match="data-parallel training is not supported"):
        learning_curve(_config(data, devices=2), tmp_path / "out", progress=False)


def test_fractions_are_sorted_and_deduplicated():
    assert check_fractions([1, 0.2, 0.5, 0.2]) == (0.2, 0.5, 1.0)
