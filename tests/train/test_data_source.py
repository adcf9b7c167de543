"""The data decides a run's input unless told otherwise, and ``train`` says which and why."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from cnnkit.cli.main import main
from cnnkit.train.config import TrainConfig
from cnnkit.train.data_source import (
    DEFAULT_MAX_SIDE,
    auto_model,
    choose_input,
    load_run_data,
    with_model,
)


def _rgb_folder(root: Path, size: tuple[int, int] = (64, 64), per_class: int = 3) -> Path:
    rng = np.random.default_rng(0)
    for name in ("cats", "dogs"):
        (root / name).mkdir(parents=True)
        for i in range(per_class):
            pixels = rng.integers(0, 256, (*size, 3), dtype=np.uint8)
            Image.fromarray(pixels).save(root / name / f"{i}.png")
    return root


def test_a_size_flexible_model_trains_at_the_images_size_and_colour():
    choice = choose_input(TrainConfig(data="x"), (3, 64, 64))  # the default model: 1x28x28
    assert (choice.color_mode, choice.size) == ("rgb", (64, 64))
    assert choice.describe() == "input 3x64x64 (from the images; --image-size to change)"


def test_pretrained_weights_tie_the_input_to_the_models_and_say_so():
    config = TrainConfig(data="x", model="vgg16", pretrained="imagenet")
    choice = choose_input(config, (1, 28, 28))
    assert (choice.color_mode, choice.size) == ("rgb", (224, 224))
    assert choice.describe() == (
        "input 3x224x224 (vgg16's pretrained input; the images are 1x28x28, converted and "
        "resized; --image-size to change)"
    )


def test_what_is_asked_wins_and_large_images_are_scaled_down():
    asked = choose_input(TrainConfig(data="x", image_size=(32, 48), color_mode="grayscale"),
                         (3, 64, 64))  # fmt: skip
    assert (asked.color_mode, asked.size, asked.reason) == ("grayscale", (32, 48), "as asked")
    big = choose_input(TrainConfig(data="x"), (3, 3000, 4000))
    assert big.size == (192, DEFAULT_MAX_SIDE) and "scaled to a longest side of 256" in big.reason
    small = choose_input(TrainConfig(data="x", model="basic_convnet"), (1, 8, 8))
    assert small.size == (18, 18) and "enlarged to basic_convnet's minimum 18x18" in small.reason


def test_a_folder_of_colour_images_loads_as_colour_at_its_size(tmp_path):
    data = load_run_data(TrainConfig(data=str(_rgb_folder(tmp_path / "d"))))
    assert data.choice is not None and data.choice.shape == (3, 64, 64)
    assert tuple(data.arrays.image_shape) == (3, 64, 64) and data.color_mode == "rgb"


def test_train_prints_the_input_it_uses_and_why(tmp_path, capsys):
    data = _rgb_folder(tmp_path / "d", size=(40, 48))
    argv = ["train", str(data), "--out", str(tmp_path / "run"), "--epochs", "1", "--no-report"]
    assert main(argv) == 0
    err = capsys.readouterr().err
    assert "input 3x40x48 (from the images; --image-size to change)" in err


def test_wrong_paths_get_the_right_message_and_leave_no_run_folder(tmp_path, capsys):
    out = tmp_path / "run"
    (tmp_path / "fm").mkdir()
    assert main(["train", str(tmp_path / "fmm"), "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"error: no such folder: {tmp_path / 'fmm'}; did you mean 'fm'?")
    assert "unknown dataset" not in err
    flat = tmp_path / "flat"
    flat.mkdir()
    for i in range(3):
        Image.fromarray(np.zeros((8, 8), np.uint8)).save(flat / f"{i}.png")
    assert main(["train", str(flat), "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert "holds 3 images but no class sub-folders" in err and f"{flat}/CLASS_A/image.png" in err
    (tmp_path / "empty" / "cats").mkdir(parents=True)
    assert main(["train", str(tmp_path / "empty"), "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert "no images found" in err and "expected one sub-folder per class" in err
    assert "sub-folders ['cats'] without images" in err
    assert not out.exists()


def test_auto_trains_basic_convnet_on_small_images_and_gapnet_from_48_px():
    assert auto_model((28, 28)) == auto_model((47, 200)) == auto_model(None) == "basic_convnet"
    assert auto_model((48, 48)) == auto_model((180, 240)) == "gapnet"
    assert TrainConfig(data="x").model == "auto"  # the default


def test_auto_follows_the_asked_size_over_the_images_and_refuses_pretrained_weights():
    small = choose_input(TrainConfig(data="x", image_size=(32, 32)), (3, 64, 64))
    assert small.size == (32, 32)  # basic_convnet: the asked size, not gapnet's
    with pytest.raises(ValueError, match="pretrained weights belong to a named model"):
        TrainConfig(data="x", pretrained="imagenet")


def test_a_folder_of_64px_pictures_trains_gapnet_and_the_run_records_it(tmp_path, capsys):
    data = load_run_data(TrainConfig(data=str(_rgb_folder(tmp_path / "pics"))))
    assert data.model == "gapnet"
    assert with_model(TrainConfig(data="x"), data).model == "gapnet"
    assert with_model(TrainConfig(data="x", model="lenet5"), data).model == "lenet5"
    out = tmp_path / "run"
    code = main(["train", str(tmp_path / "pics"), "--out", str(out), "--epochs", "1",
                 "--lr", "1e-3", "--batch-size", "2", "--no-report"])  # fmt: skip
    assert code == 0
    assert "model gapnet (auto: 64x64 images, 48 px and up" in capsys.readouterr().err
    config = json.loads((out / "config.json").read_text())
    assert config["model"] == "gapnet"
