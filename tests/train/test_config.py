import json

import pytest

from cnnkit.train.config import TrainConfig, changed_keys, load_config_file


def test_defaults_and_round_trip():
    c = TrainConfig(data="mnist-5k", model="Basic-Convnet", image_size=[32, 32])
    assert c.model == "basic_convnet" and c.image_size == (32, 32)
    assert TrainConfig.from_dict(json.loads(json.dumps(c.to_dict()))) == c
    assert c.resolved_lr == 1e-3 and c.replace(optimizer="sgd").resolved_lr == 1e-2


@pytest.mark.parametrize(
    "kwargs,match",
    [
        ({"epochs": 0}, "epochs must be a positive int"),
        ({"optimizer": "lbfgs"}, "optimizer must be one of"),
        (
            {"image_size": (0, 32)},
            r"image_size must be two positive ints. Received: image_size=\(0, 32\)",
        ),
        ({"validation_split": 1.0}, "validation_split"),
        ({"strategy": "frozen"}, "needs pretrained weights"),
        ({"precision": "fp8"}, "precision must be one of"),
        ({"lr": -1.0}, "lr must be a positive number"),
    ],
)
def test_bad_values_name_the_argument(kwargs, match):
    with pytest.raises(ValueError, match=match):
        TrainConfig(data="x", **kwargs)


def test_unknown_keys_are_named():
    with pytest.raises(ValueError, match="unknown config keys: epoch"):
        TrainConfig.from_dict({"data": "x", "epoch": 3})


def test_yaml_and_json_files(tmp_path):
    y = tmp_path / "run.yaml"
    y.write_text("data: digits\nbatch-size: 16\naugment:\n  rotation_range: 10\n")
    d = load_config_file(y)
    assert d == {"data": "digits", "batch_size": 16, "augment": {"rotation_range": 10}}
    bad = tmp_path / "bad.json"
    bad.write_text("{not json")
    with pytest.raises(ValueError, match="bad.json"):
        load_config_file(bad)
    with pytest.raises(FileNotFoundError):
        load_config_file(tmp_path / "missing.yaml")


def test_changed_keys_lists_identity_changes():
    a = TrainConfig(data="x").to_dict()
    b = TrainConfig(data="x", model="lenet5", image_size=(32, 32)).to_dict()
    assert changed_keys(a, b) == ["model", "image_size"]
    assert changed_keys(a, TrainConfig(data="x", early_stopping=3).to_dict()) == []


# --- each setting defined once: the CLI, the report and the reproduce command derive from it

NON_DEFAULT = {
    "data": "photos",
    "model": "lenet5",
    "epochs": 7,
    "batch_size": 16,
    "lr": 0.003,
    "optimizer": "sgd",
    "momentum": 0.8,
    "weight_decay": 0.01,
    "schedule": "cosine",
    "precision": "fp32",
    "image_size": (40, 36),
    "color_mode": "rgb",
    "interpolation": "nearest",
    "validation_split": 0.25,
    "seed": 5,
    "class_weight": "balanced",
    "label_smoothing": 0.1,
    "folds": 3,
    "devices": 2,
    "early_stopping": 4,
    "pretrained": "weights.pth",
    "strategy": "finetune",
    "unfreeze": 2,
    "bn": "train",
    "checkpoint_every": 2,
    "max_steps_per_epoch": 9,
    "threads": 1,
    "augment": {
        "rotation_range": 12.0,
        "width_shift_range": 3,
        "height_shift_range": 0.1,
        "shear_range": 5.0,
        "zoom_range": 0.25,
        "horizontal_flip": True,
        "vertical_flip": True,
        "fill_mode": "constant",
        "cval": 7.0,
        "brightness_range": (0.8, 1.2),
        "contrast": 0.2,
    },
}


def _cli_fields():
    from dataclasses import fields

    from cnnkit.data.augment import Augment
    from cnnkit.settings import meta

    names = {f.name for f in fields(TrainConfig) if meta(f)["cli"]}
    return names, {f.name for f in fields(Augment) if meta(f)["cli"]}


def test_the_enumeration_covers_every_setting():
    train_fields, augment_fields = _cli_fields()
    assert set(NON_DEFAULT) == train_fields, "give the new setting a non-default value here"
    assert set(NON_DEFAULT["augment"]) == augment_fields


def test_every_setting_has_a_cli_option_and_a_report_row():
    from cnnkit.cli.main import load_command
    from cnnkit.report.context import settings_rows
    from cnnkit.settings import flag

    command = load_command("train")
    options = {o for p in command.params for o in p.opts}
    train_fields, augment_fields = _cli_fields()
    for name in (train_fields - {"data", "augment"}) | augment_fields:
        assert flag(name) in options, name
    config = TrainConfig.from_dict(NON_DEFAULT)
    rows = dict(settings_rows({**config.to_dict(), "precision": {"value": "fp32"}}))
    labels = {label for label, _ in config.table()}
    assert labels - {"Data", "Augmentation"} <= set(rows)
    assert len(labels) == len(train_fields) - 1 + len(augment_fields)  # each field a row


def test_the_reproduce_command_gives_back_the_same_config(monkeypatch, capsys):
    """The report's command, typed into the real CLI, builds the very same TrainConfig."""
    import shlex
    from pathlib import Path

    from cnnkit.cli import train_cmds
    from cnnkit.cli.main import main
    from cnnkit.report.context import reproduce_command

    config = TrainConfig.from_dict(NON_DEFAULT)
    saved = {**config.to_dict(), "precision": {"value": "fp32"}}
    text = reproduce_command(saved, Path("runs/photos"))
    args = shlex.split(text.replace("\\\n", " "))
    assert args[:3] == ["cnnkit", "train", "photos"]
    seen = {}

    def capture(cfg, *rest, **kw):
        seen["config"] = cfg
        raise ValueError("captured")

    monkeypatch.setattr(train_cmds, "train_kfold", capture)  # folds=3 goes through k-fold
    assert main(args[1:]) == 2 and "captured" in capsys.readouterr().err
    assert seen["config"] == config
