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
