"""Top-loss images come from files, else from the named dataset a pseudo-path points into."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pytest
from PIL import Image

import cnnkit.data.lookup
from cnnkit.report.images import RunImages, to_hwc


def test_to_hwc():
    gray = np.arange(6, dtype=np.uint8).reshape(1, 2, 3)
    assert to_hwc(gray).shape == (2, 3)
    rgba = np.zeros((4, 2, 3), np.uint8)
    rgba[0, 1, 2] = 9
    rgb = to_hwc(rgba)
    assert rgb.shape == (2, 3, 3) and rgb[1, 2, 0] == 9


def test_files_first_then_datasets(tmp_path, monkeypatch):
    calls = []
    images = np.stack([np.full((1, 8, 8), i, np.uint8) for i in range(5)])

    def fake_load_dataset(name, split="train", path=None):
        calls.append((name, split))
        if name == "missing":
            raise FileNotFoundError("dataset 'missing' not found")
        return SimpleNamespace(images=images)

    monkeypatch.setattr(cnnkit.data.lookup, "load_dataset", fake_load_dataset)
    Image.new("L", (4, 4), 200).save(tmp_path / "a.png")
    load = RunImages([tmp_path], grayscale=True)
    assert load("a.png").max() == 200  # a file, relative to a base folder
    assert load("digits:train/3").tolist() == np.full((8, 8), 3).tolist()
    assert load("digits:train/4")[0, 0] == 4
    assert calls == [("digits", "train")]  # each dataset is loaded once
    assert load("digits:train/99") is None  # out of range
    assert load("missing:test/0") is None  # not on this machine: a placeholder tile
    assert load("not a path") is None


def test_files_become_thumbnails_and_bad_files_none(tmp_path):
    Image.new("RGB", (400, 200), (10, 20, 30)).save(tmp_path / "big.png")
    Image.new("L", (28, 28), 7).save(tmp_path / "gray.png")
    (tmp_path / "bad.png").write_bytes(b"not an image")
    big = RunImages()(str(tmp_path / "big.png"))
    assert big is not None and big.shape == (80, 160, 3)  # thumbnail, 160 px a side at most
    gray = RunImages([tmp_path], grayscale=True)("gray.png")  # relative to a base folder
    assert gray is not None and gray.shape == (28, 28) and gray.max() == 7
    assert RunImages()(str(tmp_path / "bad.png")) is None


def test_16_bit_images_are_scaled_not_clipped(tmp_path):
    """The report decodes as training does: a 16-bit mid-grey is mid-grey, not white."""
    Image.fromarray(np.full((8, 8), 32768, np.uint16)).save(tmp_path / "deep.png")
    tile = RunImages(grayscale=True)(str(tmp_path / "deep.png"))
    assert tile is not None and 126 <= int(tile.max()) <= 129


@pytest.mark.slow
def test_real_named_dataset_pseudo_paths():
    """scikit-learn's digits ship with the package, so this never needs a download."""
    from cnnkit.data import load_dataset

    data = load_dataset("digits")
    load = RunImages(grayscale=True)
    assert np.array_equal(load(data.file_paths[7]), data.images[7, 0])
