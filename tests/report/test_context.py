"""The report's findings and tables, computed from run-folder contents."""

from __future__ import annotations

import json
import shlex
from pathlib import Path

from cnnkit.report import context as ctx
from cnnkit.report.runfolder import RunFiles, read_run

METRICS = {"accuracy": 0.9, "class_names": ["cat", "dog"], "confusion_matrix": [[8, 2], [1, 9]]}


def _history(val_losses: list[float]) -> list[dict[str, str]]:
    return [
        {"epoch": str(e), "val_loss": str(v), "val_accuracy": str(0.5 + e / 100)}
        for e, v in enumerate(val_losses, 1)
    ]


def test_curves_summary_flags_overfitting():
    s = ctx.curves_summary(_history([0.9, 0.5, 0.4, 0.45, 0.6]))
    assert s == {
        "best_epoch": 3,
        "best_loss": 0.4,
        "best_accuracy": 0.53,
        "last_epoch": 5,
        "last_loss": 0.6,
        "overfit": True,
    }
    calm = ctx.curves_summary(_history([0.9, 0.5, 0.4, 0.41]))
    assert calm is not None and not calm["overfit"]
    assert ctx.curves_summary([{"epoch": "1", "loss": "0.3", "val_loss": ""}]) is None


def test_most_confused_orders_by_count_then_position():
    cm = [[5, 0, 3], [3, 5, 1], [0, 7, 5]]
    got = ctx.most_confused(cm, ["a", "b", "c"], k=3)
    assert got == [
        {"true": "c", "predicted": "b", "count": 7},
        {"true": "a", "predicted": "c", "count": 3},
        {"true": "b", "predicted": "a", "count": 3},
    ]
    assert ctx.most_confused([[4, 0], [0, 4]], ["a", "b"]) == []


def test_data_section_maps_index_keys_and_counts_the_split():
    config = {"data_summary": {"classes": {"0": 10, "1": 30}, "skipped": [["x.png", "empty", ""]]}}
    split = [
        {"path": "p", "label": "dog", "subset": s} for s in ["train"] * 24 + ["validation"] * 6
    ]
    split += [{"path": "q", "label": "cat", "subset": "validation"}] * 2
    run = RunFiles(path=Path("."), metrics=METRICS, config=config, split=split)
    data = ctx.data_section(run)
    assert data is not None
    assert [(r["name"], r["count"], r["train"], r["validation"]) for r in data["rows"]] == [
        ("cat", 10, 0, 2),
        ("dog", 30, 24, 6),
    ]
    assert data["imbalance"] == 3.0 and data["n_train"] == 24 and data["n_val"] == 8
    assert data["skipped"] == [{"path": "x.png", "problem": "empty", "detail": ""}]
    assert ctx.data_section(RunFiles(path=Path("."), metrics=METRICS)) is None


def test_reproduce_command_uses_the_train_flags():
    config = {
        "data": "my photos",
        "model": "resnet18",
        "image_size": [224, 224],
        "epochs": 5,
        "lr": 0.0001,
        "folds": 1,
        "early_stopping": 3,
        "weight_decay": 0.0,
        "precision": {"value": "fp32", "channels_last": True},
        "pretrained": "resnet18.tv_in1k",
        "strategy": "finetune",
        "unfreeze": 2,
        "bn": "frozen",
        "augment": {
            "rotation_range": 15.0,
            "horizontal_flip": True,
            "vertical_flip": False,
            "fill_mode": "constant",
            "cval": 0.5,
            "brightness_range": [0.8, 1.2],
        },
    }
    cmd = ctx.reproduce_command(config, Path("runs/pets"))
    assert cmd is not None and all(len(line) <= 80 for line in cmd.splitlines())
    args = shlex.split(cmd.replace("\\\n", " "))
    assert args[:3] == ["cnnkit", "train", "my photos"]
    text = " ".join(args)
    for part in (
        "--model resnet18",
        "--out pets-again",
        "--image-size 224 224",
        "--lr 0.0001",
        "--early-stopping 3",
        "--precision fp32",
        "--pretrained resnet18.tv_in1k",
        "--strategy finetune",
        "--unfreeze 2",
        "--rotation-range 15",
        "--brightness-range 0.8 1.2",
        "--fill-mode constant",
        "--cval 0.5",
    ):
        assert part in text
    assert "--horizontal-flip" in args and "--vertical-flip" not in args
    assert "--folds" not in args and "--weight-decay" not in args  # defaults left out
    assert ctx.reproduce_command({"model": "x"}, Path("r")) is None


def test_environment_rows_explain_the_precision():
    config = {
        "environment": {"torch": "2.14.1", "cpu": "AMD EPYC"},
        "seed": 7,
        "precision": {"value": "bf16", "channels_last": True, "reason": "native bf16"},
    }
    assert ctx.environment_rows(config) == [
        ("PyTorch", "2.14.1"),
        ("CPU", "AMD EPYC"),
        ("Precision", "bf16"),
        ("Channels-last", "yes"),
        ("Why this precision", "native bf16"),
        ("Seed", "7"),
    ]


def test_settings_rows_hide_defaults_and_unused_transfer_options():
    rows = dict(
        ctx.settings_rows(
            {
                "data": "digits",
                "model": "lenet5",
                "epochs": 3,
                "devices": 1,
                "bn": "frozen",
                "unfreeze": 0,
                "pretrained": None,
                "image_size": [32, 32],
            }
        )
    )
    assert rows == {"Model": "lenet5", "Epochs": "3", "Image size": "32 x 32"}


def test_k_fold_time_adds_up_the_folds(make_run):
    run_dir = make_run(folds=3)
    assert ctx.total_seconds(read_run(run_dir)) == 14.2  # no fold configs: the run's own
    for k, seconds in enumerate((10.0, 12.0, 11.0), 1):
        (run_dir / f"fold-{k}" / "config.json").write_text(
            json.dumps({"timing": {"total_seconds": seconds}})
        )
    run = read_run(run_dir)
    assert ctx.total_seconds(run) == 33.0
    timing = ctx.timing_section(run)
    assert timing is not None and timing["folds"] == 3 and timing["fold_seconds"] == 11.0
