"""image_dataset_from_directory: Keras split arithmetic, label modes, reproducibility, errors."""

from __future__ import annotations

import numpy as np
import pytest

from cnnkit.data import image_dataset_from_directory, split_indices
from cnnkit.data.scan import scan_folder
from conftest import save


@pytest.fixture
def ten(tmp_path):
    root = tmp_path / "ten"
    for i in range(10):
        cls = "a" if i < 6 else "b"
        save(root / cls / f"{i}.png", np.full((4, 4, 3), i * 20, np.uint8))
    return root


def _keras_reference(root, split, seed):
    """Keras 3's index_directory + get_training_or_validation_split, written out."""
    paths = list(scan_folder(root).file_paths)
    rng = np.random.RandomState(seed)
    rng.shuffle(paths)
    n_val = int(split * len(paths))
    return paths[:-n_val], paths[-n_val:]


def test_split_matches_keras_rule(ten):
    train, val = image_dataset_from_directory(
        ten, image_size=(4, 4), validation_split=0.3, subset="both", seed=42, verbose=False
    )
    ref_train, ref_val = _keras_reference(ten, 0.3, 42)
    assert train.file_paths == ref_train and val.file_paths == ref_val
    assert len(val.file_paths) == 3 and not set(train.file_paths) & set(val.file_paths)
    again = image_dataset_from_directory(
        ten, image_size=(4, 4), validation_split=0.3, subset="validation", seed=42, verbose=False
    )
    assert again.file_paths == ref_val


def test_yields_float_0_255_and_labels_match_paths(ten):
    ds = image_dataset_from_directory(ten, image_size=(4, 4), batch_size=4, seed=1, verbose=False)
    assert len(ds) == 3 and ds.class_names == ["a", "b"]
    seen = []
    for x, y in ds:
        assert x.dtype.is_floating_point and x.shape[1:] == (3, 4, 4)
        seen += list(zip((x[:, 0, 0, 0] / 20).round().long().tolist(), y.tolist(), strict=True))
    assert sorted(seen) == [(i, int(i >= 6)) for i in range(10)]


def test_label_modes_and_single_images(ten):
    kw = dict(image_size=(4, 4), verbose=False, shuffle=False)
    _, y = next(iter(image_dataset_from_directory(ten, label_mode="categorical", **kw)))
    assert y.shape == (10, 2) and y.dtype.is_floating_point
    _, y = next(iter(image_dataset_from_directory(ten, label_mode="binary", **kw)))
    assert y.shape == (10, 1)
    x = next(iter(image_dataset_from_directory(ten, label_mode=None, **kw)))
    assert x.shape == (10, 3, 4, 4)
    x, y = next(iter(image_dataset_from_directory(ten, batch_size=None, **kw)))
    assert x.shape == (3, 4, 4) and y.ndim == 0
    g = next(iter(image_dataset_from_directory(ten, color_mode="grayscale", **kw)))[0]
    assert g.shape[1] == 1


def test_broken_file_skipped_without_moving_the_split(ten):
    before, _ = image_dataset_from_directory(
        ten, image_size=(4, 4), validation_split=0.2, subset="both", seed=5, verbose=False
    )
    (ten / "a" / "0.png").write_bytes(b"")
    after, _ = image_dataset_from_directory(
        ten, image_size=(4, 4), validation_split=0.2, subset="both", seed=5, verbose=False
    )
    expected = [p for p in before.file_paths if not p.endswith("/a/0.png")]
    assert after.file_paths == expected


@pytest.mark.parametrize(
    "kwargs,match",
    [
        ({"label_mode": "sparse"}, "label_mode"),
        ({"color_mode": "hsv"}, "color_mode"),
        ({"validation_split": 0.2}, "subset"),
        ({"subset": "training"}, "validation_split"),
        ({"validation_split": 0.0, "subset": "training"}, "If `subset` is set, `validation_split`"),
        ({"validation_split": 0.2, "subset": "training"}, "seed"),
        ({"validation_split": 1.5, "subset": "training", "seed": 1}, "validation_split"),
        ({"subset": "test", "validation_split": 0.2, "seed": 1}, "subset"),
        ({"image_size": (0, 32)}, "image_size"),
        ({"image_size": 0}, "image_size"),
        ({"crop_to_aspect_ratio": True, "pad_to_aspect_ratio": True}, "Only one of"),
        ({"batch_size": 0}, "batch_size"),
        ({"interpolation": "gaussian"}, "interpolation"),
        ({"labels": "folders"}, "labels"),
    ],
)
def test_bad_arguments_name_the_argument(ten, kwargs, match):
    with pytest.raises(ValueError, match=match):
        image_dataset_from_directory(ten, verbose=False, **kwargs)


def test_validation_split_zero_means_no_split_as_keras(ten):
    ds = image_dataset_from_directory(ten, image_size=(4, 4), validation_split=0.0, verbose=False)
    assert len(ds.file_paths) == 10


def test_int_image_size_means_a_square_as_keras(ten):
    x, _ = next(iter(image_dataset_from_directory(ten, image_size=3, verbose=False)))
    assert x.shape[1:] == (3, 3, 3)


def test_pad_to_aspect_ratio_pads_black_and_keeps_the_picture(tmp_path):
    save(tmp_path / "d" / "a" / "wide.png", np.full((6, 12, 3), 200, np.uint8))
    ds = image_dataset_from_directory(tmp_path / "d", image_size=(12, 12), pad_to_aspect_ratio=True,
                                      interpolation="nearest", verbose=False)  # fmt: skip
    x = next(iter(ds))[0][0]
    assert (x[:, :3] == 0).all() and (x[:, 3:9] == 200).all() and (x[:, 9:] == 0).all()


def test_binary_needs_two_classes(ten, tmp_path):
    save(ten / "c" / "z.png", np.zeros((4, 4, 3), np.uint8))
    with pytest.raises(ValueError, match="exactly 2"):
        image_dataset_from_directory(ten, label_mode="binary", verbose=False)
    (tmp_path / "empty").mkdir()
    with pytest.raises(ValueError, match="No images"):
        image_dataset_from_directory(tmp_path / "empty", verbose=False)


def test_split_indices_stratified_and_seeded():
    labels = np.repeat([0, 1, 2], [50, 30, 20])
    tr, va = split_indices(labels, 0.2, seed=3)
    assert len(va) == 20 and np.bincount(labels[va]).tolist() == [10, 6, 4]
    assert not set(tr) & set(va) and len(tr) + len(va) == 100
    tr2, va2 = split_indices(labels, 0.2, seed=3)
    assert np.array_equal(va, va2)
    assert len(split_indices(labels, 0.0)[1]) == 0
    with pytest.raises(ValueError, match="validation_split"):
        split_indices(labels, 1.0)
