"""Keras 3's ``keras/src/utils/image_dataset_utils_test.py``, case by case, in cnnkit's API.

Each test names the ``ImageDatasetFromDirectoryTest`` case it mirrors. Keras runs most cases
twice (``format="tf"`` and ``format="grain"``); cnnkit has one pipeline, so they run once.
Translations: Keras yields channels-last ``(B, H, W, C)``, cnnkit ``(B, C, H, W)`` (float32,
0..255); Keras' ``int`` labels are int32, cnnkit's int64 (PyTorch's class index type). Cases
that cannot apply are listed, with the reason, in docs/data.md ("Keras' own test cases").
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from cnnkit.data import image_dataset_from_directory


def _images(count: int, color_mode: str, rng: np.random.Generator) -> list[Image.Image]:
    """Keras' ``_get_images``: random 24x24 pictures."""
    channels = {"grayscale": 1, "rgba": 4}.get(color_mode, 3)
    arrays = rng.integers(0, 256, (count, 24, 24, channels), dtype=np.uint8)
    return [Image.fromarray(a[..., 0] if channels == 1 else a) for a in arrays]


def prepare_directory(
    root: Path,
    num_classes: int = 2,
    nested_dirs: bool = False,
    color_mode: str = "rgb",
    count: int = 16,
) -> Path:
    """Keras' ``_prepare_directory``: ``class_i`` folders (and sub-folders), images dealt in turn.

    RGB images are written as JPEG, the others as PNG, as Keras does.
    """
    paths = []
    for c in range(num_classes):
        base = Path(f"class_{c}")
        sub = base / "subfolder_1"
        nested = [sub, base / "subfolder_2", sub / "sub-subfolder"]
        paths += [base, *nested] if nested_dirs else [base]
    for p in paths:
        (root / p).mkdir(parents=True)
    ext = "jpg" if color_mode == "rgb" else "png"
    for i, img in enumerate(_images(count, color_mode, np.random.default_rng(count))):
        img.save(root / paths[i % len(paths)] / f"image_{i}.{ext}")
    return root


def _load(directory, **kwargs):
    return image_dataset_from_directory(directory, verbose=False, **kwargs)


def _all(ds) -> torch.Tensor:
    return torch.cat([b[0] if isinstance(b, tuple) else b for b in ds])


def test_image_dataset_from_directory_no_labels(tmp_path):
    """Keras: test_image_dataset_from_directory_no_labels (extra images in the parent folder)."""
    directory = prepare_directory(tmp_path / "d", count=7, num_classes=2)
    for i, img in enumerate(_images(3, "rgb", np.random.default_rng(1))):
        img.save(directory / f"image_{i}.jpg")
    ds = _load(directory, batch_size=5, image_size=(18, 18), labels=None)
    assert ds.class_names is None
    batch = next(iter(ds))
    assert isinstance(batch, torch.Tensor)  # plain images
    assert list(batch.shape) == [5, 3, 18, 18] and batch.dtype == torch.float32
    sizes = [b.shape[0] for b in ds]
    assert len(sizes) == 2 and sum(sizes) == 10


def test_image_dataset_from_directory_binary(tmp_path):
    """Keras: test_image_dataset_from_directory_binary (label modes int/binary/categorical)."""
    directory = prepare_directory(tmp_path / "d", num_classes=2)
    for mode, shape, dtype in [
        ("int", [8], torch.int64),
        ("binary", [8, 1], torch.float32),
        ("categorical", [8, 2], torch.float32),
    ]:
        x, y = next(iter(_load(directory, batch_size=8, image_size=(18, 18), label_mode=mode)))
        assert list(x.shape) == [8, 3, 18, 18] and x.dtype == torch.float32
        assert list(y.shape) == shape and y.dtype == dtype


def test_sample_count(tmp_path):
    """Keras: test_sample_count (4 classes, 15 images, no labels)."""
    directory = prepare_directory(tmp_path / "d", num_classes=4, count=15)
    ds = _load(directory, batch_size=8, image_size=(18, 18), label_mode=None)
    assert sum(b.shape[0] for b in ds) == 15


def test_image_dataset_from_directory_multiclass(tmp_path):
    """Keras: test_image_dataset_from_directory_multiclass (two iterators at once, label modes)."""
    directory = prepare_directory(tmp_path / "d", num_classes=4, count=15)
    ds = _load(directory, batch_size=8, image_size=(18, 18), label_mode=None)
    assert list(next(iter(ds)).shape) == [8, 3, 18, 18]
    iterator = iter(ds)
    assert sum(next(iterator).shape[0] for _ in ds) == 15  # an epoch inside another epoch
    x, y = next(iter(_load(directory, batch_size=8, image_size=(18, 18), label_mode="int")))
    assert list(x.shape) == [8, 3, 18, 18] and list(y.shape) == [8] and y.dtype == torch.int64
    _, y = next(iter(_load(directory, batch_size=8, image_size=(18, 18), label_mode="categorical")))
    assert list(y.shape) == [8, 4] and y.dtype == torch.float32


@pytest.mark.parametrize("color_mode,channels", [("rgba", 4), ("grayscale", 1)])
def test_image_dataset_from_directory_color_modes(tmp_path, color_mode, channels):
    """Keras: test_image_dataset_from_directory_color_modes."""
    directory = prepare_directory(tmp_path / "d", num_classes=4, color_mode=color_mode)
    x, _ = next(iter(_load(directory, batch_size=8, image_size=(18, 18), color_mode=color_mode)))
    assert list(x.shape) == [8, channels, 18, 18] and x.dtype == torch.float32


def test_image_dataset_from_directory_validation_split(tmp_path):
    """Keras: test_image_dataset_from_directory_validation_split (10 files, 0.2 -> 8 + 2)."""
    directory = prepare_directory(tmp_path / "d", num_classes=2, count=10)
    kw = dict(batch_size=10, image_size=(18, 18), validation_split=0.2, seed=1337)
    x, _ = next(iter(_load(directory, subset="training", **kw)))
    assert list(x.shape) == [8, 3, 18, 18]
    x, _ = next(iter(_load(directory, subset="validation", **kw)))
    assert list(x.shape) == [2, 3, 18, 18]
    train, val = _load(directory, subset="both", **kw)
    assert next(iter(train))[0].shape[0] == 8 and next(iter(val))[0].shape[0] == 2


def test_image_dataset_from_directory_manual_labels(tmp_path):
    """Keras: test_image_dataset_from_directory_manual_labels."""
    one = prepare_directory(tmp_path / "one", num_classes=1, count=4)
    with pytest.raises(ValueError, match="match the number of files"):
        _load(one, batch_size=8, image_size=(18, 18), labels=[0, 1, 0], shuffle=False)
    ds = _load(one, batch_size=8, image_size=(18, 18), labels=[0, 1, 0, 1], shuffle=False)
    assert ds.class_names == ["0", "1"]
    x, y = next(iter(ds))
    assert list(x.shape) == [4, 3, 18, 18] and y.tolist() == [0, 1, 0, 1]
    three = prepare_directory(tmp_path / "three", num_classes=3, count=6)
    labels = [0, 1, 0, 1, 1, 1]
    ds = _load(three, batch_size=8, image_size=(18, 18), labels=labels, shuffle=False)
    assert ds.class_names == ["0", "1"]
    x, y = next(iter(ds))
    assert list(x.shape) == [6, 3, 18, 18] and y.tolist() == labels


def test_image_dataset_from_directory_follow_links(tmp_path):
    """Keras: test_image_dataset_from_directory_follow_links (nested folders, 25 images).

    Keras' case has no link in it; a linked class folder is added here so that
    ``follow_links`` has something to follow.
    """
    directory = prepare_directory(tmp_path / "d", num_classes=2, count=25, nested_dirs=True)
    linked = prepare_directory(tmp_path / "elsewhere", num_classes=1, count=3)
    os.symlink(linked / "class_0", directory / "class_0" / "linked", target_is_directory=True)
    ds = _load(directory, batch_size=8, image_size=(18, 18), label_mode=None, follow_links=True)
    assert sum(b.shape[0] for b in ds) == 28
    ds = _load(directory, batch_size=8, image_size=(18, 18), label_mode=None)
    assert sum(b.shape[0] for b in ds) == 25


def test_image_dataset_from_directory_no_images(tmp_path):
    """Keras: test_image_dataset_from_directory_no_images."""
    directory = prepare_directory(tmp_path / "d", num_classes=2, count=0)
    with pytest.raises(ValueError, match="No images found"):
        _load(directory)


@pytest.mark.parametrize("flag", ["crop_to_aspect_ratio", "pad_to_aspect_ratio"])
def test_image_dataset_from_directory_crop_and_pad_to_aspect_ratio(tmp_path, flag):
    """Keras: test_image_dataset_from_directory_crop_to_aspect_ratio and ..._pad_to_aspect_ratio."""
    directory = prepare_directory(tmp_path / "d", num_classes=2, count=5)
    x, _ = next(iter(_load(directory, batch_size=5, image_size=(18, 18), **{flag: True})))
    assert list(x.shape) == [5, 3, 18, 18]


@pytest.mark.parametrize(
    "kwargs,match",
    [
        ({"labels": "other"}, "`labels` argument should be"),
        ({"label_mode": "other"}, "`label_mode` argument must be"),
        ({"color_mode": "other"}, "`color_mode` must be one of"),
        (
            {"labels": [0, 0, 1, 1, 1], "class_names": ["class_0", "class_1", "class_2"]},
            'only pass `class_names` if `labels="inferred"`',
        ),
        ({"labels": [0, 0, 1, 1]}, "Expected the lengths of `labels` to match the number of files"),
        ({"class_names": ["class_0", "wrong_class"]}, "`class_names` passed did not match"),
        ({"label_mode": "binary"}, "there must be exactly 2"),
        ({"validation_split": 2}, "`validation_split` must be between 0 and 1"),
        (
            {"validation_split": 0.2, "subset": "other"},
            '`subset` must be either "training", "validation" or "both"',
        ),
        ({"validation_split": 0.0, "subset": "training"}, "`validation_split` must be set"),
        ({"validation_split": 0.2, "subset": "training"}, "must provide a `seed`"),
    ],
)
def test_image_dataset_from_directory_errors(tmp_path, kwargs, match):
    """Keras: test_image_dataset_from_directory_errors, message by message."""
    directory = prepare_directory(tmp_path / "d", num_classes=3, count=5)
    with pytest.raises(ValueError, match=match):
        _load(directory, **kwargs)


def test_image_dataset_from_directory_not_batched(tmp_path):
    """Keras: test_image_dataset_from_directory_not_batched."""
    directory = prepare_directory(tmp_path / "d", num_classes=2, count=2)
    ds = _load(directory, batch_size=None, image_size=(18, 18), label_mode=None, shuffle=False)
    assert next(iter(ds)).ndim == 3


def test_image_dataset_from_directory_shuffle(tmp_path):
    """Keras: test_image_dataset_from_directory_shuffle (format="tf": a new order each epoch)."""
    directory = prepare_directory(tmp_path / "d", num_classes=2, count=25, nested_dirs=True)
    kw = dict(batch_size=8, image_size=(18, 18), label_mode=None, follow_links=True)
    unshuffled = _all(_load(directory, shuffle=False, **kw))
    ds = _load(directory, shuffle=True, seed=1337, **kw)
    epoch_1, epoch_2 = _all(ds), _all(ds)
    assert not torch.allclose(unshuffled, epoch_1, atol=1e-6)
    assert not torch.allclose(epoch_1, epoch_2, atol=1e-6)
    again = _all(_load(directory, shuffle=True, seed=1337, **kw))
    assert torch.allclose(epoch_1, again, atol=1e-6)  # the seed fixes the sequence


def test_image_dataset_from_directory_shuffle_with_split(tmp_path):
    """Keras: test_image_dataset_from_directory_shuffle_with_split (validation never shuffled)."""
    directory = prepare_directory(tmp_path / "d", num_classes=2, count=25, nested_dirs=True)
    kw = dict(batch_size=8, image_size=(18, 18), label_mode=None, follow_links=True,
              validation_split=0.2, subset="both", seed=1337)  # fmt: skip
    unshuffled_train, _ = _load(directory, shuffle=False, **kw)
    train, val = _load(directory, shuffle=True, **kw)
    train_1, val_1, train_2, val_2 = _all(train), _all(val), _all(train), _all(val)
    assert not torch.allclose(_all(unshuffled_train), train_1, atol=1e-6)
    assert not torch.allclose(train_1, train_2, atol=1e-6)
    assert torch.allclose(val_1, val_2, atol=1e-6)
    train, val = _load(directory, shuffle=True, **kw)
    assert torch.allclose(train_1, _all(train), atol=1e-6)
    assert torch.allclose(val_1, _all(val), atol=1e-6)


def test_image_size_int_means_a_square(tmp_path):
    """Keras' code, not its tests: ``if isinstance(image_size, int): image_size = (n, n)``."""
    directory = prepare_directory(tmp_path / "d", num_classes=2, count=4)
    x, _ = next(iter(_load(directory, image_size=18)))
    assert list(x.shape) == [4, 3, 18, 18]


def test_validation_split_zero_is_no_split(tmp_path):
    """Keras' ``check_validation_split_arg``: a falsy ``validation_split`` means no split."""
    directory = prepare_directory(tmp_path / "d", num_classes=2, count=6)
    assert len(_load(directory, image_size=(18, 18), validation_split=0.0).file_paths) == 6
    with pytest.raises(ValueError, match="If `subset` is set, `validation_split` must be set"):
        _load(directory, subset="training", seed=1)
