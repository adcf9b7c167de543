"""A run's config.json is checked once, before use: tampered values are one clear line."""

from __future__ import annotations

import json

import pytest

from cnnkit.errors import RunFolderError
from cnnkit.runs.config import read_run_config

GOOD = {
    "model": "basic_convnet",
    "class_names": ["a", "b"],
    "image_size": [28, 28],
    "in_chans": 1,
    "color_mode": "grayscale",
    "mean": [0.0],
    "std": [1.0],
}


def _write(tmp_path, cfg):
    (tmp_path / "config.json").write_text(cfg if isinstance(cfg, str) else json.dumps(cfg))
    return tmp_path


def test_a_good_config_reads(tmp_path):
    assert read_run_config(_write(tmp_path, GOOD))["model"] == "basic_convnet"


@pytest.mark.parametrize(
    "change, match",
    [
        ({"color_mode": "rgb"}, "color_mode='rgb' has 3 channels but in_chans=1"),
        ({"image_size": [65536, 65536]}, "image_size"),
        ({"image_size": [28]}, "image_size"),
        ({"in_chans": 7}, "in_chans"),
        ({"class_names": []}, "class_names"),
        ({"class_names": ["a", "a"]}, "duplicates"),
        ({"num_classes": 5}, "num_classes"),
        ({"std": [0.0]}, "std"),
        ({"mean": [float("nan")]}, "mean"),
        ({"interpolation": "magic"}, "interpolation"),
        ({"model": 3}, "model"),
    ],
)
def test_tampered_values_are_named(tmp_path, change, match):
    with pytest.raises(RunFolderError, match=match) as e:
        read_run_config(_write(tmp_path, {**GOOD, **change}))
    assert "config.json" in str(e.value) and "\n" not in str(e.value)


def test_missing_keys_are_named(tmp_path):
    cfg = {k: v for k, v in GOOD.items() if k != "color_mode"}
    with pytest.raises(RunFolderError, match="missing color_mode"):
        read_run_config(_write(tmp_path, cfg))


def test_deeply_nested_json_is_one_line(tmp_path):
    text = '{"a": ' + "[" * 200_000 + "]" * 200_000 + "}"
    with pytest.raises(RunFolderError, match="nested deeper"):
        read_run_config(_write(tmp_path, text))


def test_not_a_run_folder(tmp_path):
    with pytest.raises(RunFolderError, match="not found"):
        read_run_config(tmp_path / "nope")
    with pytest.raises(RunFolderError, match="no config.json"):
        read_run_config(tmp_path)
