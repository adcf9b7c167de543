"""A realistic run folder, as `cnnkit train` writes it, built in tmp_path for report tests."""

from __future__ import annotations

import csv
import json
import math
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pytest
from PIL import Image, ImageDraw

SUMMARY = """\
Model: "basic_convnet"
┏━━━━━━━━━━━━━━━━━━━━━━┳━━━━━━━━━━━━━━━━━━━┳━━━━━━━━━━━━┓
┃ Layer (type)         ┃ Output Shape      ┃    Param # ┃
┡━━━━━━━━━━━━━━━━━━━━━━╇━━━━━━━━━━━━━━━━━━━╇━━━━━━━━━━━━┩
│ conv1 (Conv2d)       │ (None, 32, 26, 26)│        320 │
│ pool1 (MaxPool2d)    │ (None, 32, 13, 13)│          0 │
│ conv2 (Conv2d)       │ (None, 64, 11, 11)│     18,496 │
│ pool2 (MaxPool2d)    │ (None, 64, 5, 5)  │          0 │
│ flatten (Flatten)    │ (None, 1600)      │          0 │
│ fc (Linear)          │ (None, 3)         │      4,803 │
└──────────────────────┴───────────────────┴────────────┘
 Total params: 23,619
 Trainable params: 23,619
 Non-trainable params: 0
"""


def _digit_png(path: Path, k: int, rng: np.random.Generator) -> None:
    """A 28x28 grayscale PNG with a class-dependent shape, slightly jittered."""
    im = Image.new("L", (28, 28), 0)
    d = ImageDraw.Draw(im)
    o = int(rng.integers(0, 4))
    shapes = (
        lambda: d.ellipse((5 + o, 5, 22 + o, 22), outline=255, width=3),
        lambda: d.line((14 + o, 4, 14 + o, 24), fill=255, width=3),
        lambda: d.rectangle((6, 6 + o, 21, 21), outline=255, width=3),
    )
    shapes[k % len(shapes)]()
    path.parent.mkdir(parents=True, exist_ok=True)
    im.save(path)


def _predictions(labels: list[int], names: Sequence[str], rng: np.random.Generator) -> list[dict]:
    rows = []
    k = len(names)
    for y in labels:
        correct = rng.random() < 0.8
        pred = y if correct else int((y + 1 + rng.integers(0, k - 1)) % k)
        p_pred = float(rng.uniform(0.5, 0.99))
        p_true = p_pred if correct else float(rng.uniform(0.01, (1 - p_pred) * 0.9 + 0.01))
        rows.append(
            {
                "label": names[y],
                "predicted": names[pred],
                "probability": round(p_pred, 4),
                "loss": round(-math.log(p_true), 4),
            }
        )
    return rows


def _metrics(rows: list[dict], names: Sequence[str]) -> dict:
    idx = {n: i for i, n in enumerate(names)}
    k = len(names)
    cm = np.zeros((k, k), dtype=int)
    for r in rows:
        cm[idx[r["label"]], idx[r["predicted"]]] += 1
    n = int(cm.sum())
    acc = float(np.trace(cm) / n)
    z = 1.96
    centre = (acc + z * z / (2 * n)) / (1 + z * z / n)
    half = z * math.sqrt(acc * (1 - acc) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    per_class = {}
    for i, name in enumerate(names):
        tp, support, predicted = cm[i, i], cm[i].sum(), cm[:, i].sum()
        p = tp / predicted if predicted else 0.0
        r = tp / support if support else 0.0
        f1 = 2 * p * r / (p + r) if p + r else 0.0
        per_class[name] = {"precision": p, "recall": r, "f1": f1, "support": int(support)}
    f1s = [v["f1"] for v in per_class.values()]
    weights = [v["support"] for v in per_class.values()]
    return {
        "accuracy": acc,
        "accuracy_ci": [centre - half, centre + half],
        "n": n,
        "class_names": list(names),
        "per_class": per_class,
        "macro_f1": float(np.mean(f1s)),
        "weighted_f1": float(np.average(f1s, weights=weights)),
        "log_loss": float(np.mean([r["loss"] for r in rows])),
        "confusion_matrix": cm.tolist(),
    }


def _write_csv(path: Path, rows: list[dict]) -> None:
    with path.open("w", newline="", encoding="utf-8") as f:
        w = csv.DictWriter(f, fieldnames=list(rows[0]))
        w.writeheader()
        w.writerows(rows)


def _history(epochs: int) -> list[dict]:
    return [
        {
            "epoch": e,
            "loss": round(1.2 / e, 4),
            "accuracy": round(1 - 0.5 / e, 4),
            "val_loss": round(1.1 / e + 0.03 * e, 4),
            "val_accuracy": round(1 - 0.55 / e, 4),
            "lr": 0.001,
            "seconds": 2.5 + 0.1 * e,
            "images_per_second": 1500 + 10 * e,
        }
        for e in range(1, epochs + 1)
    ]


def _config(data: str, names: Sequence[str], n_train: int, n_val: int, folds: int) -> dict:
    return {
        "model": "basic_convnet",
        "data": data,
        "class_names": list(names),
        "image_size": [28, 28],
        "color_mode": "grayscale",
        "in_chans": 1,
        "mean": [0.0],
        "std": [1.0],
        "epochs": 4,
        "batch_size": 128,
        "lr": 0.001,
        "optimizer": "adam",
        "schedule": "onecycle",
        "seed": 0,
        "validation_split": 0.2,
        "folds": max(folds, 1),  # cnnkit writes 1 for a run without k-fold
        "augment": {
            "rotation_range": 10.0,
            "width_shift_range": 0.1,
            "height_shift_range": 0.0,
            "shear_range": 0.0,
            "zoom_range": 0.1,
            "horizontal_flip": False,
            "vertical_flip": False,
            "fill_mode": "nearest",
            "cval": 0.0,
            "brightness_range": None,
        },
        "class_weight": "none",
        "precision": {
            "value": "bf16",
            "channels_last": True,
            "reason": "CPU has AVX-512 bf16; bf16 + channels_last timed 1.8x fp32",
        },
        "environment": {
            "cnnkit": "0.1.0",
            "torch": "2.14.1",
            "python": "3.11.2",
            "device": "cpu",
            "cpu": "AMD EPYC 9R14",
            "threads": 2,
        },
        "data_summary": {
            "classes": {str(i): (n_train + n_val) // len(names) for i in range(len(names))},
            "n_train": n_train,
            "n_val": n_val,
            "skipped": [
                {
                    "path": f"{data}/broken.png",
                    "problem": "truncated",
                    "detail": "image file is truncated",
                }
            ],
        },
        "strategy": None,
        "pretrained": None,
        "timing": {"total_seconds": 14.2},
    }


def _png(path: Path, size: tuple[int, int], color: tuple[int, int, int]) -> None:
    Image.new("RGB", size, color).save(path)


def build_run(
    root: Path,
    *,
    class_names: Sequence[str] = ("circle", "line", "square"),
    n_per_class: int = 10,
    epochs: int = 4,
    folds: int = 0,
    pseudo_paths: bool = False,
    optional: bool = True,
    seed: int = 0,
) -> Path:
    """Write a run folder under ``root`` (``root/run``) and its image folder ``root/data``.

    ``optional=False`` writes only ``metrics.json`` (the one required file);
    ``pseudo_paths`` uses named-dataset pseudo-paths (``toy-shapes:train/12``, a dataset that
    is not registered, so the tiles are placeholders) instead of files.
    """
    rng = np.random.default_rng(seed)
    run, data = root / "run", root / "data"
    run.mkdir(parents=True)
    names = list(class_names)
    split, val_labels, val_paths = [], [], []
    for k, _ in enumerate(names):
        for j in range(n_per_class):
            path = (
                f"toy-shapes:train/{k * 100 + j}"
                if pseudo_paths
                else str(data / f"c{k}" / f"{j}.png")
            )
            if not pseudo_paths:
                _digit_png(Path(path), k, rng)
            subset = "validation" if j % 2 == 0 else "train"
            split.append({"path": path, "label": names[k], "subset": subset})
            if subset == "validation":
                val_labels.append(k)
                val_paths.append(path)
    preds = _predictions(val_labels, names, rng)
    for row, path in zip(preds, val_paths, strict=True):
        row["path"] = path
    (run / "metrics.json").write_text(json.dumps(_metrics(preds, names), indent=2))
    if not optional:
        return run
    preds = [
        {k: r[k] for k in ("path", "label", "predicted", "probability", "loss")} for r in preds
    ]
    _write_csv(run / "predictions.csv", preds)
    _write_csv(run / "split.csv", split)
    _write_csv(run / "history.csv", _history(epochs))
    n_val = len(val_labels)
    config = _config(
        "toy-shapes" if pseudo_paths else str(data), names, len(split) - n_val, n_val, folds
    )
    (run / "config.json").write_text(json.dumps(config, indent=2))
    (run / "summary.txt").write_text(SUMMARY, encoding="utf-8")
    _png(run / "augment.png", (320, 160), (200, 210, 230))
    _png(run / "gallery.png", (400, 200), (230, 200, 180))
    if folds:
        accs = [0.9 + 0.01 * i for i in range(folds)]
        cv = {
            "folds": max(folds, 1),  # cnnkit writes 1 for a run without k-fold
            "accuracy_mean": float(np.mean(accs)),
            "accuracy_sd": float(np.std(accs, ddof=1)),
            "per_fold": [{"fold": i + 1, "accuracy": a} for i, a in enumerate(accs)],
        }
        (run / "cv.json").write_text(json.dumps(cv))
        for i in range(folds):
            (run / f"fold-{i + 1}").mkdir()
    return run


@pytest.fixture
def make_run(tmp_path):
    """``make_run(**options) -> Path``: a run folder in a fresh sub-folder of tmp_path."""
    counter = iter(range(1000))

    def make(**options) -> Path:
        return build_run(tmp_path / f"r{next(counter)}", **options)

    return make


@pytest.fixture(scope="session")
def full_report(tmp_path_factory):
    """A complete run folder (3 classes, 3 folds) rendered once per session: (run, html)."""
    from cnnkit.report import render_report

    run = build_run(tmp_path_factory.mktemp("full"), folds=3)
    path = render_report(run)
    return run, path.read_text(encoding="utf-8")
